//! Every option and limit with its default, the command line, and the token file.
//!
//! Command line (see `USAGE`): named options, or websockify's positional form
//! `[source_addr:]source_port target_host:target_port` so existing scripts keep working.
//!
//! Token file: websockify's format, one `token: host:port` (or
//! `token: unix_socket:/path`) per line, `#` comments; or, as websockify reads
//! it, a directory of such files. wsvnc adds optional words after the address
//! (ignored by nothing else, since websockify files never have them):
//! `password=SECRET`, `password-file=PATH`, `view_only`, `linger=SECS`, and
//! for the RFB security types `username=NAME`, `vnc-ca=PATH`,
//! `vnc-fingerprint=sha256:HEX`.
//! Names are resolved and files read when the token file is read, never per
//! connection.
//!
//! Which modes a port serves: gateway mode (`/ws`, the built-in viewer)
//! always; relay mode (raw RFB for noVNC and other websockify clients, on any
//! other WebSocket path) only with `--relay` or websockify's positional form,
//! and never for a view-only target (the relay cannot filter input).

use std::collections::HashMap;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Where a session connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for TargetAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetAddr::Tcp(a) => write!(f, "{a}"),
            TargetAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// One configured target with its gateway settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: TargetAddr,
    /// VNC password for gateway mode; `None` = ask the browser if needed.
    pub password: Option<Vec<u8>>,
    pub view_only: bool,
    /// User name and TLS certificate checks for the VNC server.
    pub security: TargetSecurity,
    /// Token word `linger=SECS`: overrides `Config::linger` for this target.
    pub linger: Option<Duration>,
}

impl Target {
    /// No password, not view-only, no security settings, the default linger.
    pub fn new(addr: TargetAddr) -> Target {
        Target { addr, password: None, view_only: false, security: TargetSecurity::default(), linger: None }
    }
}

/// Longest `--linger` / `linger=` accepted: a lingering session holds its VNC
/// connection and framebuffer (up to 256 MiB) with nobody watching.
pub const MAX_LINGER: Duration = Duration::from_secs(3600);

/// Parse a linger in whole seconds, 0..=MAX_LINGER (0 = off).
fn linger_secs(v: &str, name: &str) -> Result<Duration, ConfigError> {
    match v.parse::<u64>() {
        Ok(n) if n <= MAX_LINGER.as_secs() => Ok(Duration::from_secs(n)),
        _ => err(format!("{name} wants whole seconds from 0 to {}, not '{v}'", MAX_LINGER.as_secs())),
    }
}

// ------------------------------------------------- RFB security settings

/// How wsvnc logs in to a target's VNC server beyond the password, and how
/// it checks the server's TLS certificate (VeNCrypt X509 sub-types; see
/// `rfb::security`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetSecurity {
    /// User name for X509Plain and Apple Remote Desktop (`--vnc-username`, `username=`).
    pub username: Option<Vec<u8>>,
    /// CA certificates, PEM, read at start (`--vnc-ca FILE`, `vnc-ca=PATH`).
    pub ca_pem: Option<Arc<[u8]>>,
    /// SHA-256 of the server's certificate (`--vnc-fingerprint`, `vnc-fingerprint=`).
    pub fingerprint: Option<[u8; 32]>,
    /// The host as written in the configuration: the name the certificate
    /// must carry when checked against a CA.
    pub host: Option<String>,
}

impl TargetSecurity {
    /// The RFB client's settings for a connection to `addr`. The
    /// certificate name is the configured host, else the address's IP, else
    /// (Unix socket) `localhost`.
    pub fn rfb(&self, addr: &TargetAddr) -> crate::rfb::security::SecurityConfig {
        let tls = (self.ca_pem.is_some() || self.fingerprint.is_some()).then(|| crate::rfb::security::TlsTrust {
            server_name: match (&self.host, addr) {
                (Some(h), _) => h.clone(),
                (None, TargetAddr::Tcp(a)) => a.ip().to_string(),
                (None, TargetAddr::Unix(_)) => "localhost".into(),
            },
            ca_pem: self.ca_pem.clone(),
            fingerprint: self.fingerprint,
        });
        crate::rfb::security::SecurityConfig { username: self.username.clone(), tls }
    }

    /// One `--vnc-*` option or token-file word; `Ok(false)` if not one of
    /// them. `base` resolves a relative CA path.
    fn apply(&mut self, name: &str, value: &str, base: &Path) -> Result<bool, ConfigError> {
        match name {
            "username" => self.username = Some(value.as_bytes().to_vec()),
            "vnc-ca" => self.ca_pem = Some(read_ca_file(&base.join(value))?),
            "vnc-fingerprint" => {
                self.fingerprint = Some(crate::rfb::security::parse_fingerprint(value).map_err(ConfigError)?)
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Read and check a PEM file of CA certificates.
pub fn read_ca_file(path: &Path) -> Result<Arc<[u8]>, ConfigError> {
    let pem = std::fs::read(path).map_err(|e| ConfigError(format!("cannot read CA file {}: {e}", path.display())))?;
    crate::rfb::security::check_ca_pem(&pem).map_err(|e| ConfigError(format!("CA file {}: {e}", path.display())))?;
    Ok(pem.into())
}

/// The host part of `host:port` (`[v6]:port` too), as the user wrote it.
fn host_of(spec: &str) -> Option<String> {
    let (host, _) = spec.trim().rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| host.to_string())
}

/// Everything the daemon needs. `Default` gives the documented defaults.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The target for connections without `?token=` (from `--target`/`--unix-target`).
    pub target: Option<Target>,
    pub token_file: Option<PathBuf>,
    pub web_dir: Option<PathBuf>,
    pub allowed_origins: Vec<String>,
    pub max_connections: usize,
    /// Close WebSockets from which nothing arrived for this long (None = never).
    pub idle_timeout: Option<Duration>,
    /// Send a WebSocket ping this often (None = never).
    pub heartbeat: Option<Duration>,
    /// An HTTP request head must arrive within this (slowloris guard), and
    /// a gateway viewer's ClientHello within this of its upgrade.
    pub handshake_timeout: Duration,
    /// Close a WebSocket (1001) whose answer to a heartbeat ping has not
    /// come within this (None = never).
    pub pong_timeout: Option<Duration>,
    /// Browser connections open at once from one TCP peer address (IPv6: per
    /// /64); 0 = no cap. Trusted proxies are exempt (`server::per_client`).
    pub max_per_client: usize,
    /// Listen backlog (None: the system's maximum, `server::backlog`).
    pub backlog: Option<u32>,
    /// Largest WebSocket message accepted from a browser.
    pub max_message: usize,
    /// Per-direction relay buffer cap; reading stops while it is full.
    pub relay_buffer: usize,
    /// Relay bulk target→browser streams with splice(2) through a pipe
    /// (zero-copy) instead of copying through user space.
    pub relay_splice: bool,
    /// Gateway: RFB encodings to advertise, in order (None = built-in default).
    pub encodings: Option<Vec<i32>>,
    /// Gateway: accept Tight JPEG from the VNC server at this quality level
    /// (0..=9, the JPEG Quality Level pseudo-encoding); None = lossless only.
    pub vnc_jpeg: Option<u8>,
    /// Gateway: zlib level asked of the VNC server (0..=9, the Compression
    /// Level pseudo-encoding); None = the server's default.
    pub vnc_compress: Option<u8>,
    /// Gateway: ClientInit shared flag.
    pub shared: bool,
    /// Gateway: all viewers view-only.
    pub view_only: bool,
    /// Gateway: never send lossy (JPEG) regions to browsers.
    pub lossless: bool,
    /// Gateway: keep a VNC session this long after its last viewer left
    /// (`--linger`; zero = end it at once).
    pub linger: Duration,
    /// Run the built-in demo VNC server and use it as the default target.
    pub demo: bool,
    /// Serve only the demo VNC server on this address (no HTTP).
    pub demo_server: Option<SocketAddr>,
    /// Desktop size of the demo VNC server (None = its default, 1024×768).
    pub demo_size: Option<(u16, u16)>,
    /// Every WebSocket path echoes (for the Autobahn example; not a CLI option).
    pub echo: bool,
    /// Host check and authentication (`--allowed-host`, `--jwt-*`, `--basic-auth-file`, `--no-auth`).
    pub access: crate::http::access::AccessConfig,

    // ---- relay mode and websockify compatibility
    /// Serve relay mode (raw RFB to noVNC and other websockify clients) on every
    /// WebSocket path but the gateway's: `--relay`, or websockify's positional
    /// form. Off by default: the relay passes input, so it is never offered
    /// for a view-only target (see `Target::view_only`, `view_only`).
    pub relay: bool,
    /// websockify's `--idle-timeout`: exit the process after this long without
    /// any browser connection (None = never).
    pub exit_when_idle: Option<Duration>,
    /// `Content-Security-Policy` for HTML files from `--web DIR` (None = none,
    /// as websockify sends; the embedded viewer always has `http::CSP`).
    pub web_csp: Option<String>,

    // ---- TLS and reverse proxies
    /// Serve HTTPS/WSS with this certificate and key (`--cert`, `--key`).
    pub tls: Option<TlsFiles>,
    /// Peers whose `Forwarded`/`X-Forwarded-*` fields are believed (`--trusted-proxy`).
    pub trusted_proxies: Vec<crate::transport::proxy::Cidr>,
    /// Serve `/metrics` on the listening port (`--metrics`).
    pub metrics: bool,
    /// Serve `/metrics` on its own plain-HTTP listener (`--metrics-listen`).
    pub metrics_listen: Option<SocketAddr>,

    // ---- service manager
    /// Tokens from Redis (`--token-plugin TokenRedis --token-source SPEC`)
    /// instead of a token file.
    pub token_redis: Option<crate::tokens::redis::RedisSource>,
    /// `--listen unix:PATH`, `--user`, `--group`, `--pid-file` (`service`).
    pub service: crate::service::ServiceConfig,
}

/// Certificate files for TLS on the listening port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first (may hold the key too).
    pub cert: PathBuf,
    /// PEM private key (defaults to `cert`, websockify's convention).
    pub key: PathBuf,
    /// Refuse plain HTTP on the port (`--ssl-only`); else both are served,
    /// told apart by the first byte (a TLS ClientHello starts with 0x16).
    pub only: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:6080".parse().unwrap(),
            target: None,
            token_file: None,
            web_dir: None,
            allowed_origins: Vec::new(),
            max_connections: 1024,
            idle_timeout: None,
            heartbeat: Some(Duration::from_secs(30)),
            handshake_timeout: Duration::from_secs(10),
            pong_timeout: Some(Duration::from_secs(30)),
            max_per_client: 64,
            backlog: None,
            max_message: 4 << 20,
            relay_buffer: 256 << 10,
            relay_splice: true,
            encodings: None,
            vnc_jpeg: None,
            vnc_compress: None,
            shared: true,
            view_only: false,
            lossless: false,
            linger: Duration::from_secs(5),
            demo: false,
            demo_server: None,
            demo_size: None,
            echo: false,
            access: Default::default(),
            relay: false,
            exit_when_idle: None,
            web_csp: None,
            tls: None,
            trusted_proxies: Vec::new(),
            metrics: false,
            metrics_listen: None,
            token_redis: None,
            service: Default::default(),
        }
    }
}

pub const USAGE: &str = "\
wsvnc - VNC in the browser through WebSockets

USAGE:
    wsvnc [OPTIONS]                  gateway mode only (see MODES)
    wsvnc [OPTIONS] [SOURCE_ADDR:]SOURCE_PORT [TARGET_HOST:TARGET_PORT]
                                     websockify's form: gateway + relay mode; the target may be
                                     left out with --token-plugin/--target-config/--unix-target
    wsvnc --demo                     gateway + built-in demo desktop, open http://127.0.0.1:6080/
    wsvnc hash-password USER [COST]  print an htpasswd line for --basic-auth-file (bcrypt, cost 10;
                                     the password is read from standard input)
    wsvnc bench [--quick]            measure relay, gateway and memory on this machine (built-in
                                     demo desktop and load clients; under a minute, --quick: secs)

MODES (one port serves both; the log says which at start):
    gateway  always. The built-in viewer at http://LISTEN/ , WebSocket /ws. wsvnc is the VNC
             client; --view-only and the token word view_only are enforced here.
    relay    only with --relay or the websockify form. Raw RFB for noVNC and other websockify
             clients, on ANY WebSocket path except /ws (noVNC's default is /websockify), as
             websockify does. Never offered for a view-only target: the relay cannot filter
             input, so such a connection is closed with 1008 and a reason.
    Precedence for a request: /ws -> gateway; another path asking for a WebSocket -> relay
    (404 when relay mode is off); any other GET -> static files (embedded viewer or --web DIR).

OPTIONS:
    --listen ADDR:PORT        address to serve HTTP and WebSocket on [default: 127.0.0.1:6080];
                              unix:PATH for a Unix socket (see SERVICE MANAGER)
    --target HOST:PORT        VNC server for connections without ?token= (resolved at start)
    --unix-target PATH        VNC server on a Unix socket instead of TCP
    --token-file PATH         websockify token file, or a directory whose every file (names not
                              starting with '.') is one: lines 'token: host:port' or
                              'token: unix_socket:/path' (wsvnc also reads optional
                              'password=..', 'password-file=..', 'view_only' words);
                              ?token=NAME picks the target; re-read when a file changes
    --token-plugin TokenFile --token-source PATH
    --target-config PATH      websockify's spellings of --token-file (TokenFile and
                              ReadOnlyTokenFile are the plugins supported)
    --token-plugin TokenRedis --token-source HOST[:PORT[:DB[:PASSWORD[:NAMESPACE]]]]
                              tokens from Redis, websockify's format: key NAMESPACE:TOKEN (or
                              TOKEN), value 'host:port' or {\"host\": \"host:port\"}; read at start,
                              every second and on SIGHUP (docs/fleet.md)
    --password-file FILE      VNC password for --target (first line); without one the browser
                              is asked when the VNC server wants a password
    --vnc-username NAME       user name for --target, for VeNCrypt X509Plain and Apple Remote
                              Desktop (token file: username=NAME)
    --vnc-ca FILE             PEM CA certificate(s) the VNC server's TLS certificate must chain
                              to, for the name in --target; enables VeNCrypt X509None, X509Vnc,
                              X509Plain (token file: vnc-ca=PATH)
    --vnc-fingerprint sha256:HEX
                              accept exactly the VNC server certificate with this SHA-256
                              (token file: vnc-fingerprint=sha256:HEX)
    --relay                   also serve relay mode (see MODES); on with the websockify form
                              unless --view-only is given
    --web DIR                 serve files from DIR instead of the viewer built into the binary
    --web-csp POLICY          Content-Security-Policy sent with HTML from --web DIR [default:
                              none, as websockify; noVNC's pages have inline scripts]. The
                              embedded viewer always gets a strict policy (default-src 'self')
    --allow-origin ORIGIN     also accept WebSockets from ORIGIN (repeatable; '*' = any). By
                              default only pages from this server (Origin matching Host) or
                              clients sending no Origin are accepted
    --max-connections N       refuse connections beyond N with 503 [default: 1024]
    --idle-timeout SECS       exit after SECS without any connection, 0 = never (websockify's
                              meaning) [default: 0]
    --ws-idle-timeout SECS    close WebSockets (1001) from which nothing arrived for SECS, 0 =
                              never [default: 0]; the server's own traffic and pings do not
                              count, a browser's pongs do (was --idle-timeout before wsvnc
                              followed websockify)
    --heartbeat SECS          ping WebSocket clients this often, 0 = never [default: 30]
    --handshake-timeout SECS  time allowed for an HTTP request head, and for a gateway viewer's
                              ClientHello after its upgrade (else close 1008) [default: 10]
    --pong-timeout SECS       close a WebSocket (1001) that has not answered a heartbeat ping
                              within SECS, 0 = never [default: 30]
    --max-per-client N        browser connections open at once from one address (IPv6: one
                              /64), 0 = no cap; trusted proxies are exempt [default: 64]
    --backlog N               listen backlog [default: net.core.somaxconn, else 4096]
    --max-message BYTES       largest WebSocket message accepted [default: 4194304]
    --encodings LIST          gateway: RFB encodings in preference order, comma separated
                              (tight,zrle,hextile,zlib,rre,copyrect,raw) [default: raw,copyrect,rre for
                              a VNC server on this host (loopback, unix:), else tight first]
    --vnc-jpeg QUALITY        gateway: let the VNC server send Tight JPEG at quality 0-9 (9 best;
                              needs a build with --features vnc-jpeg)
                              for photo-like areas, decoded into the framebuffer: lossy, for
                              VNC servers far away [default: off, lossless]
    --vnc-compress LEVEL      gateway: zlib level 0-9 for the VNC server (its compression level
                              pseudo-encoding). 0-1 spare its CPU, and a small change no longer
                              waits for it to compress a large photo update, but TigerVNC then
                              also skips comparing the screen with what it sent (apps that redraw
                              unchanged pixels cost more) [default: the server's, 2 for TigerVNC]
    --relay-copy              relay: copy bulk streams through user space instead of splice(2)
                              (zero-copy, the default; for comparison and odd kernels)
    --exclusive               gateway: ask the VNC server for an exclusive session (not shared)
    --view-only               gateway: viewers cannot send input; relay mode is not offered
    --lossless                gateway: never send JPEG to browsers, only exact pixels (more
                              bytes on photo-like content; by default JPEG quality follows each
                              browser's measured link and areas are refined to exact later)
    --linger SECS             gateway: keep a VNC session (its connection and picture) SECS
                              after its last viewer left, so a viewer coming back needs no new
                              VNC login; 0 = end it at once, at most 3600 (token file:
                              linger=SECS) [default: 5]
    --demo                    run the built-in demo VNC server and use it as the target
    --demo-server ADDR:PORT   run only the demo VNC server on ADDR:PORT (for tests, benchmarks)
    --demo-size WxH           desktop size of the demo VNC server [default: 1024x768]
    --metrics                 serve /metrics (OpenMetrics/Prometheus text) on the listening port,
                              behind the access control; without --jwt-secret-file or
                              --basic-auth-file only to loopback clients (docs/metrics.md)
    --metrics-listen ADDR:PORT
                              serve /metrics (only) on its own plain-HTTP listener, with the
                              same Host check and credentials; a non-loopback address needs
                              credentials or --no-auth, as --listen does
    -h, --help                print this help
    -V, --version             print the version

TLS AND REVERSE PROXIES:
    --cert FILE               serve HTTPS and WSS with this PEM certificate chain (leaf first);
                              plain HTTP keeps working on the same port unless --ssl-only.
                              Reloaded on SIGHUP and when the file changes (live sessions keep
                              theirs). Also --tls-cert. TLS 1.2/1.3 only, ALPN http/1.1
    --key FILE                PEM private key for --cert [default: the --cert file]. Also --tls-key
    --ssl-only                refuse plain HTTP on the port (TLS only). Also --tls-only
    --trusted-proxy ADDR[/PREFIX]
                              a reverse proxy (repeatable): requests from it may name the client
                              (Forwarded, X-Forwarded-For) for logs and per-address limits, and
                              the public host and scheme (X-Forwarded-Host/-Proto) for the
                              Origin check. Fields from any other peer are ignored. 'unix':
                              the peers of a --listen unix: socket

ACCESS CONTROL (off by default only on a loopback listen address; on any other address wsvnc
refuses to start without --jwt-secret-file, --basic-auth-file or --no-auth):
    --allowed-host NAME       also serve requests whose Host is NAME (repeatable; *.example.com
                              for subdomains; '*' = any). IP literals and 'localhost' are always
                              served; any other name gets 421, on every listen address: a
                              DNS-rebinding page reaches a wildcard or LAN bind by a name it
                              controls just as it reaches a loopback one
    --jwt-secret-file FILE    require an access token: a JWT signed with HS256 by the key in FILE
                              (its bytes, one trailing newline dropped; at least 32), with 'exp'.
                              Browsers pass it as ?jwt=TOKEN (or websockify's ?token=TOKEN) on
                              the page URL (a cookie then admits the page's files and WebSocket)
                              or on the WebSocket URL; scripts as 'Authorization: Bearer TOKEN'
    --jwt-target RULE         let tokens pick their VNC server with websockify's host/port claims,
                              within RULE: ADDR[/PREFIX]:PORT[-PORT] ([V6/PREFIX]:PORTS), or '*'
                              (repeatable) [default: none: tokens cannot pick a server]
    --basic-auth-file FILE    require an HTTP Basic login checked against FILE (htpasswd format,
                              bcrypt: lines from 'wsvnc hash-password USER' or 'htpasswd -nB USER')
    --no-auth                 serve a non-loopback address without access control (e.g. behind
                              a proxy that authenticates)

SERVICE MANAGER (docs/systemd.md):
    --listen unix:PATH        serve on a Unix stream socket instead of TCP (a stale socket file is
                              replaced, a live one refused; removed on exit); peers log as 'unix'
    --socket-mode OCTAL       permissions of that socket [default: 0660]
    --user NAME               after binding, switch to this user (and its primary group) for good;
                              wsvnc does not serve if the switch fails
    --group NAME              after binding, switch to this group (with --user: instead of its
                              primary group); supplementary groups are dropped
    --pid-file PATH           write the pid there after binding; removed on a clean exit
    NOTIFY_SOCKET             sd_notify: READY=1 once listening, RELOADING=1/READY=1 around SIGHUP,
                              STOPPING=1 at shutdown, WATCHDOG=1 every WATCHDOG_USEC/2 (Type=notify)
    LISTEN_FDS, LISTEN_PID    systemd socket activation: the inherited TCP or Unix sockets are served
                              instead of --listen

Signals: SIGTERM/SIGINT close every WebSocket (1001) and exit; SIGHUP reloads the token file
(or Redis tokens) and the certificates.
Logging: RUST_LOG=info (default) | debug | warn.";

/// A command-line or token-file problem, for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// What the command line asked for (made once per process: its size does not matter).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Command {
    Run(Config),
    Help,
    Version,
    /// `wsvnc hash-password USER [COST]`.
    HashPassword {
        user: String,
        cost: u32,
    },
    /// `wsvnc bench [--quick]`.
    Bench {
        quick: bool,
    },
}

/// Resolve `host:port` (or `:port`/`port` with a default host) to one address.
pub fn resolve(spec: &str, default_host: &str) -> Result<SocketAddr, ConfigError> {
    let spec = spec.trim();
    let full = if let Ok(port) = spec.parse::<u16>() {
        format!("{default_host}:{port}")
    } else if let Some(port) = spec.strip_prefix(':') {
        format!("{default_host}:{port}")
    } else {
        spec.to_string()
    };
    match full.to_socket_addrs() {
        Ok(mut addrs) => match addrs.next() {
            Some(a) => Ok(a),
            None => err(format!("'{spec}' resolves to no address")),
        },
        Err(e) => err(format!("cannot resolve '{spec}': {e}")),
    }
}

fn secs(v: &str, name: &str) -> Result<Option<Duration>, ConfigError> {
    match v.parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(Duration::from_secs(n))),
        Err(_) => err(format!("{name} wants a whole number of seconds, not '{v}'")),
    }
}

/// Read a password file: the first line, without its line ending.
pub fn read_password_file(path: &Path) -> Result<Vec<u8>, ConfigError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let line = bytes.split(|b| *b == b'\n').next().unwrap_or(&[]);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            Ok(line.to_vec())
        }
        Err(e) => err(format!("cannot read password file {}: {e}", path.display())),
    }
}

/// `--jwt-secret-file`: the file's bytes without one trailing newline; at
/// least 32 bytes (RFC 7518 §3.2: an HS256 key as long as the hash).
pub fn read_jwt_secret(path: &Path) -> Result<Vec<u8>, ConfigError> {
    let mut key = std::fs::read(path).map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
    if key.ends_with(b"\n") {
        key.pop();
        if key.ends_with(b"\r") {
            key.pop();
        }
    }
    if key.len() < 32 {
        return err(format!(
            "{}: a JWT key needs at least 32 bytes (HS256), this one has {} (e.g. head -c 32 /dev/urandom | base64)",
            path.display(),
            key.len()
        ));
    }
    Ok(key)
}

/// Parse encoding names for `--encodings`.
pub fn parse_encodings(list: &str) -> Result<Vec<i32>, ConfigError> {
    use crate::rfb::encoding::*;
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let e = match name.to_ascii_lowercase().as_str() {
            "raw" => RAW,
            "copyrect" => COPY_RECT,
            "rre" => RRE,
            "hextile" => HEXTILE,
            "zlib" => ZLIB,
            "tight" => TIGHT,
            "zrle" => ZRLE,
            other => return err(format!("unknown encoding '{other}'")),
        };
        if !out.contains(&e) {
            out.push(e);
        }
    }
    if out.is_empty() {
        return err("--encodings needs at least one encoding");
    }
    Ok(out)
}

/// Parse the command line (without the program name).
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Command, ConfigError> {
    let mut cfg = Config::default();
    let mut positional = Vec::new();
    let mut target_spec: Option<String> = None;
    let mut unix_target: Option<PathBuf> = None;
    let mut password_file: Option<PathBuf> = None;
    let (mut cert, mut key, mut ssl_only): (Option<PathBuf>, Option<PathBuf>, bool) = (None, None, false);
    let mut args = args.into_iter().peekable();
    if args.peek().is_some_and(|a| a == "hash-password") {
        args.next();
        let rest: Vec<String> = args.collect();
        return match rest.as_slice() {
            [user] => Ok(Command::HashPassword { user: user.clone(), cost: crate::http::access::basic::DEFAULT_COST }),
            [user, cost] => match cost.parse::<u32>() {
                Ok(c) if (4..=16).contains(&c) => Ok(Command::HashPassword { user: user.clone(), cost: c }),
                _ => err(format!("hash-password: COST must be 4..=16, not '{cost}'")),
            },
            _ => err("usage: wsvnc hash-password USER [COST]   (password on standard input)"),
        };
    }
    if args.peek().is_some_and(|a| a == "bench") {
        args.next();
        let rest: Vec<String> = args.collect();
        return match rest.as_slice() {
            [] => Ok(Command::Bench { quick: false }),
            [q] if q == "--quick" => Ok(Command::Bench { quick: true }),
            _ => err("usage: wsvnc bench [--quick]"),
        };
    }
    let mut tokens = TokenOptions::default();
    let mut relay_asked = false;
    let mut security = TargetSecurity::default();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let value = |args: &mut std::iter::Peekable<I::IntoIter>| -> Result<String, ConfigError> {
            match inline.clone().or_else(|| args.next()) {
                Some(v) => Ok(v),
                None => err(format!("{name} needs a value (see --help)")),
            }
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--listen" => match value(&mut args)? {
                v if v.starts_with("unix:") => cfg.service.listen_unix = Some(PathBuf::from(&v[5..])),
                v => cfg.listen = resolve(&v, "127.0.0.1")?,
            },
            "--target" => target_spec = Some(value(&mut args)?),
            "--unix-target" => unix_target = Some(PathBuf::from(value(&mut args)?)),
            "--token-file" | "--token-source" | "--target-config" => tokens.source(&name, value(&mut args)?)?,
            "--token-plugin" => tokens.plugin(value(&mut args)?)?,
            "--relay" => relay_asked = true,
            "--web-csp" => cfg.web_csp = Some(header_value(&value(&mut args)?, "--web-csp")?),
            "--password-file" => password_file = Some(PathBuf::from(value(&mut args)?)),
            "--vnc-username" | "--vnc-ca" | "--vnc-fingerprint" => {
                let word = if name == "--vnc-username" { "username" } else { &name[2..] };
                security.apply(word, &value(&mut args)?, Path::new("."))?;
            }
            "--web" => cfg.web_dir = Some(PathBuf::from(value(&mut args)?)),
            "--allow-origin" => cfg.allowed_origins.push(value(&mut args)?),
            "--max-connections" => {
                let v = value(&mut args)?;
                cfg.max_connections = match v.parse() {
                    Ok(n) if n > 0 => n,
                    _ => return err(format!("--max-connections wants a positive number, not '{v}'")),
                }
            }
            "--idle-timeout" => cfg.exit_when_idle = secs(&value(&mut args)?, "--idle-timeout")?,
            "--ws-idle-timeout" => cfg.idle_timeout = secs(&value(&mut args)?, "--ws-idle-timeout")?,
            "--heartbeat" => cfg.heartbeat = secs(&value(&mut args)?, "--heartbeat")?,
            "--handshake-timeout" => {
                cfg.handshake_timeout =
                    secs(&value(&mut args)?, "--handshake-timeout")?.unwrap_or(Duration::from_secs(10))
            }
            "--pong-timeout" => cfg.pong_timeout = secs(&value(&mut args)?, "--pong-timeout")?,
            "--max-per-client" => {
                let v = value(&mut args)?;
                cfg.max_per_client =
                    v.parse().map_err(|_| ConfigError(format!("--max-per-client wants a number, not '{v}'")))?
            }
            "--backlog" => {
                let v = value(&mut args)?;
                cfg.backlog = match v.parse() {
                    Ok(n) if n > 0 && n <= i32::MAX as u32 => Some(n),
                    _ => return err(format!("--backlog wants a positive number, not '{v}'")),
                }
            }
            "--max-message" => {
                let v = value(&mut args)?;
                cfg.max_message = match v.parse() {
                    Ok(n) if n >= 1024 => n,
                    _ => return err(format!("--max-message wants a number ≥ 1024, not '{v}'")),
                }
            }
            "--encodings" => cfg.encodings = Some(parse_encodings(&value(&mut args)?)?),
            "--vnc-jpeg" => {
                let v = value(&mut args)?;
                cfg.vnc_jpeg = match v.parse() {
                    Ok(q @ 0..=9) => Some(q),
                    _ => return err(format!("--vnc-jpeg wants a quality from 0 to 9, not '{v}'")),
                };
                if !cfg!(feature = "vnc-jpeg") {
                    return err("--vnc-jpeg: this wsvnc was built without the vnc-jpeg feature \
                                (cargo build --release --features vnc-jpeg)"
                        .to_string());
                }
            }
            "--vnc-compress" => {
                let v = value(&mut args)?;
                cfg.vnc_compress = match v.parse() {
                    Ok(l @ 0..=9) => Some(l),
                    _ => return err(format!("--vnc-compress wants a level from 0 to 9, not '{v}'")),
                }
            }
            "--exclusive" => cfg.shared = false,
            "--view-only" => cfg.view_only = true,
            "--lossless" => cfg.lossless = true,
            "--linger" => cfg.linger = linger_secs(&value(&mut args)?, "--linger")?,
            "--relay-copy" => cfg.relay_splice = false,
            "--demo" => cfg.demo = true,
            "--demo-server" => cfg.demo_server = Some(resolve(&value(&mut args)?, "127.0.0.1")?),
            "--demo-size" => {
                let v = value(&mut args)?;
                let size = v.split_once('x').and_then(|(w, h)| Some((w.parse::<u16>().ok()?, h.parse::<u16>().ok()?)));
                cfg.demo_size = match size {
                    Some((w, h))
                        if (1..=crate::demo::MAX_DIMENSION).contains(&w)
                            && (1..=crate::demo::MAX_DIMENSION).contains(&h) =>
                    {
                        Some((w, h))
                    }
                    _ => return err(format!("--demo-size wants WIDTHxHEIGHT, each 1..=4096, not '{v}'")),
                }
            }
            "--cert" | "--tls-cert" => cert = Some(PathBuf::from(value(&mut args)?)),
            "--key" | "--tls-key" => key = Some(PathBuf::from(value(&mut args)?)),
            "--ssl-only" | "--tls-only" => ssl_only = true,
            "--trusted-proxy" => {
                let v = value(&mut args)?;
                // `unix`: peers on a Unix listening socket (`app::UNIX_PEER`'s address).
                let v = if v == "unix" { "0.0.0.0/32".to_string() } else { v };
                cfg.trusted_proxies.push(v.parse().map_err(|e| ConfigError(format!("--trusted-proxy: {e}")))?);
            }
            // Access control (http::access).
            "--allowed-host" => cfg.access.allowed_hosts.push(value(&mut args)?),
            "--jwt-secret-file" => cfg.access.jwt_secret = Some(read_jwt_secret(Path::new(&value(&mut args)?))?),
            "--jwt-target" => cfg
                .access
                .jwt_targets
                .push(crate::http::access::TargetRule::parse(&value(&mut args)?).map_err(ConfigError)?),
            "--basic-auth-file" => {
                let path = PathBuf::from(value(&mut args)?);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
                let users = crate::http::access::basic::Users::parse(&text)
                    .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
                cfg.access.basic_users = Some(users);
            }
            "--no-auth" => cfg.access.no_auth = true,
            "--metrics" => cfg.metrics = true,
            "--metrics-listen" => cfg.metrics_listen = Some(resolve(&value(&mut args)?, "127.0.0.1")?),
            "--socket-mode" | "--user" | "--group" | "--pid-file" => {
                cfg.service.option(&name, &value(&mut args)?)?;
            }
            s if s.starts_with('-') && s.len() > 1 => return err(format!("unknown option '{s}' (see --help)")),
            _ => positional.push(arg),
        }
    }
    (cfg.token_file, cfg.token_redis) = tokens.finish()?;
    cfg.service.finish()?;
    match positional.len() {
        0 => {}
        1 | 2 => {
            // websockify: [source_addr:]source_port [target_host:target_port];
            // the target may be left out when a token file or a Unix socket
            // names it (websockify's rule).
            cfg.listen = resolve(&positional[0], "0.0.0.0")?;
            if let Some(t) = positional.get(1) {
                if target_spec.is_some() {
                    return err("give the target either positionally or with --target, not both");
                }
                target_spec = Some(t.clone());
            } else if cfg.token_file.is_none() && cfg.token_redis.is_none() && unix_target.is_none() {
                return err(
                    "websockify form without a target: give TARGET_HOST:TARGET_PORT, a token file or --unix-target",
                );
            }
        }
        _ => {
            return err(format!(
                "expected '[source_addr:]source_port [target_host:target_port]', got {} positional argument(s)",
                positional.len()
            ))
        }
    }
    // Relay mode: asked for, or implied by websockify's form (whose users
    // expect a websockify) unless every target is view-only.
    if relay_asked && cfg.view_only {
        return err("--relay and --view-only exclude each other: the relay passes input through");
    }
    cfg.relay = relay_asked || (!positional.is_empty() && !cfg.view_only);
    let addr = match (target_spec, unix_target) {
        (Some(_), Some(_)) => return err("--target and --unix-target exclude each other"),
        (Some(t), None) => {
            security.host = host_of(&t);
            Some(TargetAddr::Tcp(resolve(&t, "127.0.0.1")?))
        }
        (None, Some(p)) => Some(TargetAddr::Unix(p)),
        (None, None) => None,
    };
    cfg.tls = match (cert, key, ssl_only) {
        (Some(cert), key, only) => Some(TlsFiles { key: key.unwrap_or_else(|| cert.clone()), cert, only }),
        (None, Some(_), _) => return err("--key needs --cert"),
        (None, None, true) => return err("--ssl-only needs --cert"),
        (None, None, false) => None,
    };
    let password = match &password_file {
        Some(p) => Some(read_password_file(p)?),
        None => None,
    };
    if let Some(addr) = addr {
        cfg.target = Some(Target { password, security, ..Target::new(addr) });
    } else if password_file.is_some() || security != TargetSecurity::default() {
        return err("--password-file and --vnc-* apply to --target/--unix-target; give one of them");
    }
    Ok(Command::Run(cfg))
}

/// `--token-file PATH`, or websockify's `--token-plugin TokenFile
/// --token-source PATH` and `--target-config PATH`: one source, named once.
#[derive(Default)]
struct TokenOptions {
    path: Option<(String, PathBuf)>,
    plugin: Option<String>,
}

impl TokenOptions {
    fn source(&mut self, option: &str, path: String) -> Result<(), ConfigError> {
        if let Some((first, _)) = &self.path {
            return err(format!("{option} and {first} both name a token file; give one"));
        }
        self.path = Some((option.to_string(), PathBuf::from(path)));
        Ok(())
    }

    /// websockify loads `websockify.token_plugins.NAME` for a bare NAME.
    fn plugin(&mut self, class: String) -> Result<(), ConfigError> {
        let name = class.strip_prefix("websockify.token_plugins.").unwrap_or(&class);
        if !matches!(name, "TokenFile" | "ReadOnlyTokenFile" | "TokenRedis") {
            return err(format!(
                "--token-plugin {class}: only websockify's TokenFile, ReadOnlyTokenFile and TokenRedis are supported"
            ));
        }
        self.plugin = Some(class);
        Ok(())
    }

    /// websockify's rules: `--token-source` needs `--token-plugin`, and the
    /// plugin needs its source. TokenRedis's source is `host[:port[:db[:password[:namespace]]]]`.
    fn finish(self) -> Result<(Option<PathBuf>, Option<crate::tokens::redis::RedisSource>), ConfigError> {
        if self.plugin.as_deref().is_some_and(|p| p.ends_with("TokenRedis")) {
            return match self.path {
                Some((opt, spec)) if opt == "--token-source" => {
                    Ok((None, Some(crate::tokens::redis::RedisSource::parse(&spec.to_string_lossy())?)))
                }
                _ => err("--token-plugin TokenRedis needs --token-source host[:port[:db[:password[:namespace]]]]"),
            };
        }
        let file = match (self.path, self.plugin) {
            (Some((opt, _)), None) if opt == "--token-source" => err("--token-source needs --token-plugin TokenFile"),
            (Some((opt, _)), Some(_)) if opt != "--token-source" => {
                err(format!("--token-plugin goes with --token-source, not {opt}"))
            }
            (None, Some(_)) => err("--token-plugin TokenFile needs --token-source PATH"),
            (path, _) => Ok(path.map(|(_, p)| p)),
        }?;
        Ok((file, None))
    }
}

/// A value we will send as an HTTP header field: printable ASCII, not empty.
fn header_value(v: &str, name: &str) -> Result<String, ConfigError> {
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return err(format!("{name} wants printable ASCII on one line, not {v:?}"));
    }
    Ok(v.to_string())
}

/// Targets by token, as read from a token file.
#[derive(Debug, Default, Clone)]
pub struct TokenTable {
    pub entries: HashMap<String, Target>,
    /// Modification time of the file when read, to notice changes.
    pub mtime: Option<SystemTime>,
}

impl TokenTable {
    /// Parse token-file text. `base` resolves relative `password-file=` paths.
    /// Bad lines are reported, not skipped silently.
    pub fn parse(text: &str, base: &Path) -> Result<TokenTable, ConfigError> {
        let mut entries = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((token, rest)) = line.split_once(':') else {
                return err(format!("token file line {}: expected 'token: host:port'", n + 1));
            };
            let token = token.trim();
            let mut words = rest.split_whitespace();
            let Some(addr) = words.next() else {
                return err(format!("token file line {}: missing host:port", n + 1));
            };
            let mut host = None;
            // `unix_socket:` is websockify's spelling, `unix:` wsvnc's.
            let addr = if let Some(path) = addr.strip_prefix("unix_socket:").or_else(|| addr.strip_prefix("unix:")) {
                TargetAddr::Unix(PathBuf::from(path))
            } else {
                host = host_of(addr);
                TargetAddr::Tcp(
                    resolve(addr, "127.0.0.1").map_err(|e| ConfigError(format!("token file line {}: {e}", n + 1)))?,
                )
            };
            let mut target = Target::new(addr);
            target.security.host = host;
            for w in words {
                let at_line = |e: ConfigError| ConfigError(format!("token file line {}: {e}", n + 1));
                if let Some((name, value)) = w.split_once('=') {
                    if target.security.apply(name, value, base).map_err(at_line)? {
                        continue;
                    }
                }
                if let Some(pw) = w.strip_prefix("password=") {
                    target.password = Some(pw.as_bytes().to_vec());
                } else if let Some(p) = w.strip_prefix("password-file=") {
                    target.password = Some(read_password_file(&base.join(p))?);
                } else if w == "view_only" {
                    target.view_only = true;
                } else if let Some(v) = w.strip_prefix("linger=") {
                    target.linger = Some(linger_secs(v, "linger=").map_err(at_line)?);
                } else {
                    return err(format!("token file line {}: unknown word '{w}'", n + 1));
                }
            }
            if token.is_empty() {
                return err(format!("token file line {}: empty token", n + 1));
            }
            entries.insert(token.to_string(), target);
        }
        Ok(TokenTable { entries, mtime: None })
    }

    /// Read and parse the file, or every file of a directory (blocking file
    /// I/O and name resolution; called at start-up and when
    /// [`token_source_mtime`] changes).
    ///
    /// A directory is read as websockify reads one: every file in it, here
    /// in name order, skipping names that start with '.' (editor swap files);
    /// a token named in two files takes the later file's line (logged).
    pub fn load(path: &Path) -> Result<TokenTable, ConfigError> {
        let cannot = |e: std::io::Error| ConfigError(format!("cannot read token file {}: {e}", path.display()));
        let mtime = token_source_mtime(path);
        if !std::fs::metadata(path).map_err(cannot)?.is_dir() {
            let text = std::fs::read_to_string(path).map_err(cannot)?;
            let mut table = TokenTable::parse(&text, path.parent().unwrap_or(Path::new(".")))?;
            table.mtime = mtime;
            return Ok(table);
        }
        let mut table = TokenTable { entries: HashMap::new(), mtime };
        for file in token_dir_files(path).map_err(cannot)? {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| ConfigError(format!("cannot read token file {}: {e}", file.display())))?;
            let part = TokenTable::parse(&text, path).map_err(|e| ConfigError(format!("{}: {e}", file.display())))?;
            for (token, target) in part.entries {
                if table.entries.insert(token.clone(), target).is_some() {
                    log::warn!("token {token:?} is named again in {}; that line wins", file.display());
                }
            }
        }
        Ok(table)
    }
}

/// The files a token directory consists of: regular files (symlinks
/// followed) whose names do not start with '.', in name order.
fn token_dir_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// When a token source last changed: the file's mtime, or for a directory
/// the latest of its own (files added, removed, renamed) and its files'
/// (edited in place). None when it cannot be read.
pub fn token_source_mtime(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    let own = meta.modified().ok();
    if !meta.is_dir() {
        return own;
    }
    let files = token_dir_files(path).ok()?;
    files.iter().filter_map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok()).chain(own).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, ConfigError> {
        match parse_args(args.iter().map(|s| s.to_string()))? {
            Command::Run(c) => Ok(c),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let c = run(&[]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:6080".parse().unwrap());
        assert!(c.target.is_none());
        assert_eq!(c.max_connections, 1024);
        assert_eq!((c.pong_timeout, c.max_per_client, c.backlog), (Some(Duration::from_secs(30)), 64, None));
    }

    #[test]
    fn named_options() {
        let c = run(&[
            "--listen",
            "127.0.0.1:7000",
            "--target=127.0.0.1:5901",
            "--max-connections",
            "10",
            "--ws-idle-timeout",
            "60",
            "--idle-timeout",
            "5",
            "--heartbeat",
            "0",
            "--allow-origin",
            "https://a.example",
        ])
        .unwrap();
        assert_eq!(c.listen.port(), 7000);
        assert_eq!(c.target.unwrap().addr, TargetAddr::Tcp("127.0.0.1:5901".parse().unwrap()));
        assert_eq!(c.max_connections, 10);
        assert_eq!(c.idle_timeout, Some(Duration::from_secs(60)));
        assert_eq!(c.exit_when_idle, Some(Duration::from_secs(5)), "--idle-timeout is websockify's: exit");
        assert_eq!(c.heartbeat, None);
        assert_eq!(c.allowed_origins, vec!["https://a.example".to_string()]);
    }

    #[test]
    fn websockify_positional_form() {
        let c = run(&["6081", "127.0.0.1:5900"]).unwrap();
        assert_eq!(c.listen, "0.0.0.0:6081".parse().unwrap());
        assert_eq!(c.target.unwrap().addr, TargetAddr::Tcp("127.0.0.1:5900".parse().unwrap()));
        let c = run(&["127.0.0.1:6082", "localhost:5900"]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:6082".parse().unwrap());
    }

    #[test]
    fn bad_command_lines_are_errors() {
        assert!(run(&["--bogus"]).is_err());
        assert!(run(&["--listen"]).is_err());
        assert!(run(&["--max-connections", "0"]).is_err());
        assert_eq!(run(&["--pong-timeout", "0"]).unwrap().pong_timeout, None);
        assert_eq!(run(&["--max-per-client", "0"]).unwrap().max_per_client, 0);
        assert_eq!(run(&["--backlog", "77"]).unwrap().backlog, Some(77));
        assert!(run(&["--backlog", "0"]).is_err());
        assert!(run(&["--max-per-client", "-1"]).is_err());
        assert!(run(&["1", "2", "3"]).is_err());
        assert!(run(&["--target", "127.0.0.1:1", "--unix-target", "/x"]).is_err());
        assert!(run(&["--encodings", "zrle,bogus"]).is_err());
        assert!(matches!(parse_args(["--help".to_string()]), Ok(Command::Help)));
    }

    #[test]
    fn linger_option_and_token_word() {
        assert_eq!(run(&[]).unwrap().linger, Duration::from_secs(5), "default");
        assert_eq!(run(&["--linger", "0"]).unwrap().linger, Duration::ZERO);
        assert_eq!(run(&["--linger", "3600"]).unwrap().linger, MAX_LINGER);
        for bad in ["3601", "-1", "2.5", ""] {
            assert!(run(&["--linger", bad]).is_err(), "--linger {bad:?}");
        }
        let t = TokenTable::parse(
            "a: 127.0.0.1:1 linger=30
b: 127.0.0.1:2 linger=0
c: 127.0.0.1:3
",
            Path::new("."),
        )
        .unwrap();
        assert_eq!(t.entries["a"].linger, Some(Duration::from_secs(30)));
        assert_eq!(t.entries["b"].linger, Some(Duration::ZERO));
        assert_eq!(t.entries["c"].linger, None);
        let e = TokenTable::parse("a: 127.0.0.1:1 linger=x\n", Path::new(".")).unwrap_err();
        assert!(e.0.contains("line 1") && e.0.contains("linger="), "{e}");
    }

    #[test]
    fn token_file_lines() {
        let t = TokenTable::parse(
            "# comment\nalpha: 127.0.0.1:5901\n beta :localhost:5902 password=s3cret view_only\nsock: unix:/tmp/vnc.sock\n",
            Path::new("."),
        )
        .unwrap();
        assert_eq!(t.entries.len(), 3);
        assert_eq!(t.entries["alpha"].addr, TargetAddr::Tcp("127.0.0.1:5901".parse().unwrap()));
        assert_eq!(t.entries["beta"].password.as_deref(), Some(&b"s3cret"[..]));
        assert!(t.entries["beta"].view_only);
        assert_eq!(t.entries["sock"].addr, TargetAddr::Unix("/tmp/vnc.sock".into()));
        assert!(TokenTable::parse("nocolon\n", Path::new(".")).is_err());
        assert!(TokenTable::parse("a: 127.0.0.1:1 frob\n", Path::new(".")).is_err());
    }

    /// A directory with a CA file (a real certificate: with `tls` it is parsed).
    fn ca_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wsvnc-config-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        std::fs::write(dir.join("ca.pem"), p.self_signed(&key).unwrap().pem()).unwrap();
        std::fs::write(dir.join("bad.pem"), "no certificate here\n").unwrap();
        dir
    }

    #[test]
    fn vnc_security_options() {
        let dir = ca_dir("cli");
        let ca = dir.join("ca.pem");
        let pin = format!("sha256:{}", "0f".repeat(32));
        let c = run(&[
            "--target",
            "localhost:5901",
            "--vnc-username",
            "alice",
            "--vnc-ca",
            ca.to_str().unwrap(),
            "--vnc-fingerprint",
            &pin,
        ])
        .unwrap();
        let t = c.target.unwrap();
        assert_eq!(t.security.username.as_deref(), Some(&b"alice"[..]));
        assert_eq!(t.security.ca_pem.as_deref(), Some(&std::fs::read(&ca).unwrap()[..]));
        assert_eq!(t.security.fingerprint, Some([0x0f; 32]));
        let rfb = t.security.rfb(&t.addr);
        assert_eq!(rfb.tls.as_ref().unwrap().server_name, "localhost", "the name as written, not the address");
        assert_eq!(rfb.username.as_deref(), Some(&b"alice"[..]));

        // IPv6 and address targets name the address; no CA or pin: no TLS.
        let t = run(&["--target", "[::1]:5900", "--vnc-fingerprint", &pin]).unwrap().target.unwrap();
        assert_eq!(t.security.rfb(&t.addr).tls.unwrap().server_name, "::1");
        let t = run(&["--target", "127.0.0.1:5900", "--vnc-username", "u"]).unwrap().target.unwrap();
        assert!(t.security.rfb(&t.addr).tls.is_none());
        let t = run(&["--unix-target", "/tmp/v.sock", "--vnc-fingerprint", &pin]).unwrap().target.unwrap();
        assert_eq!(t.security.rfb(&t.addr).tls.unwrap().server_name, "localhost");

        let e = |args: &[&str]| run(args).unwrap_err().0;
        assert!(e(&["--target", "127.0.0.1:1", "--vnc-ca", "/nonexistent/ca.pem"]).contains("/nonexistent/ca.pem"));
        assert!(e(&["--target", "127.0.0.1:1", "--vnc-ca", dir.join("bad.pem").to_str().unwrap()])
            .contains("no CERTIFICATE"));
        assert!(e(&["--target", "127.0.0.1:1", "--vnc-fingerprint", "abcd"]).contains("sha256:"));
        assert!(e(&["--vnc-username", "u"]).contains("--target"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn token_file_security_words() {
        let dir = ca_dir("tokens");
        let pin = format!("sha256:{}", "AB:".repeat(31) + "AB");
        let text = format!(
            "a: localhost:5901 username=bob vnc-ca=ca.pem password=pw\nb: 127.0.0.1:5902 vnc-fingerprint={pin}\nc: 127.0.0.1:5903\n"
        );
        let t = TokenTable::parse(&text, &dir).unwrap();
        let a = &t.entries["a"];
        assert_eq!(a.security.username.as_deref(), Some(&b"bob"[..]));
        assert!(a.security.ca_pem.is_some(), "vnc-ca= relative to the token file");
        assert_eq!(a.password.as_deref(), Some(&b"pw"[..]));
        assert_eq!(a.security.rfb(&a.addr).tls.unwrap().server_name, "localhost");
        let b = &t.entries["b"];
        assert_eq!(b.security.fingerprint, Some([0xab; 32]));
        assert_eq!(b.security.rfb(&b.addr).tls.unwrap().server_name, "127.0.0.1");
        assert_eq!(t.entries["c"].security, TargetSecurity { host: Some("127.0.0.1".into()), ..Default::default() });
        let err = |line: &str| TokenTable::parse(line, &dir).unwrap_err().0;
        assert!(err("x: 127.0.0.1:1 vnc-fingerprint=sha1:00").starts_with("token file line 1:"));
        assert!(err("x: 127.0.0.1:1\ny: 127.0.0.1:1 vnc-ca=missing.pem").starts_with("token file line 2:"));
        assert!(err("x: 127.0.0.1:1 vnc-cert=a").contains("unknown word"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn access_options() {
        let dir = std::env::temp_dir().join(format!("wsvnc-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("key");
        std::fs::write(&key, "0123456789abcdef0123456789abcdef\n").unwrap();
        let short = dir.join("short");
        std::fs::write(&short, "too short\n").unwrap();
        let key_s = key.to_str().unwrap();
        let c = run(&[
            "--allowed-host",
            "vnc.example.com",
            "--jwt-secret-file",
            key_s,
            "--jwt-target",
            "10.0.0.0/8:5900-5999",
            "--no-auth",
        ])
        .unwrap();
        assert_eq!(c.access.allowed_hosts, ["vnc.example.com"]);
        assert_eq!(c.access.jwt_secret.as_deref(), Some(&b"0123456789abcdef0123456789abcdef"[..]));
        assert_eq!(c.access.jwt_targets.len(), 1);
        assert!(c.access.no_auth);
        let e = run(&["--jwt-secret-file", short.to_str().unwrap()]).unwrap_err();
        assert!(e.0.contains("at least 32 bytes"), "{e}");
        assert!(run(&["--jwt-target", "vnc.lan:5900"]).is_err());
        assert!(run(&["--basic-auth-file", dir.join("missing").to_str().unwrap()]).is_err());
        assert!(matches!(
            parse_args(["hash-password".to_string(), "ann".to_string()]),
            Ok(Command::HashPassword { cost: 10, .. })
        ));
        assert!(parse_args(["hash-password".to_string(), "ann".to_string(), "40".to_string()]).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    #[cfg(feature = "vnc-jpeg")]
    fn vnc_jpeg_quality() {
        assert_eq!(run(&["--vnc-jpeg", "6"]).unwrap().vnc_jpeg, Some(6));
        assert_eq!(run(&["--vnc-jpeg=0"]).unwrap().vnc_jpeg, Some(0));
        assert_eq!(run(&[]).unwrap().vnc_jpeg, None);
        for bad in ["10", "-1", "x", ""] {
            assert!(run(&["--vnc-jpeg", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn vnc_compress_level() {
        assert_eq!(run(&["--vnc-compress", "6"]).unwrap().vnc_compress, Some(6));
        assert_eq!(run(&[]).unwrap().vnc_compress, None);
        for bad in ["10", "-1", "x", ""] {
            assert!(run(&["--vnc-compress", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn relay_mode_is_opt_in_and_never_with_view_only() {
        assert!(!run(&["--target", "127.0.0.1:5900"]).unwrap().relay, "relay is off by default");
        assert!(run(&["--relay", "--target", "127.0.0.1:5900"]).unwrap().relay);
        assert!(run(&["6080", "127.0.0.1:5900"]).unwrap().relay, "websockify's form implies relay");
        let c = run(&["--view-only", "6080", "127.0.0.1:5900"]).unwrap();
        assert!(!c.relay && c.view_only, "view-only keeps the relay off even in websockify's form");
        assert!(run(&["--relay", "--view-only", "--target", "127.0.0.1:5900"]).is_err());
    }

    #[test]
    fn websockify_token_options_are_aliases() {
        let tf = |c: Config| c.token_file.unwrap();
        assert_eq!(tf(run(&["--token-file", "/t"]).unwrap()), PathBuf::from("/t"));
        assert_eq!(tf(run(&["--token-plugin", "TokenFile", "--token-source", "/t"]).unwrap()), PathBuf::from("/t"));
        assert_eq!(
            tf(run(&["--token-source=/t", "--token-plugin=websockify.token_plugins.ReadOnlyTokenFile"]).unwrap()),
            PathBuf::from("/t")
        );
        assert_eq!(tf(run(&["--target-config", "/t"]).unwrap()), PathBuf::from("/t"));
        // websockify's rules, and one source only.
        assert!(run(&["--token-source", "/t"]).is_err());
        assert!(run(&["--token-plugin", "TokenFile"]).is_err());
        let c = run(&["--token-plugin", "TokenRedis", "--token-source", "127.0.0.1:6390:3::ns"]).unwrap();
        let r = c.token_redis.unwrap();
        assert_eq!((r.port, r.db, r.prefix.as_str()), (6390, 3, "ns:"));
        assert!(c.token_file.is_none());
        assert!(run(&["--token-plugin", "TokenRedis", "--token-file", "x:6379"]).is_err());
        assert!(run(&["--token-plugin", "TokenRedis"]).is_err());
        assert!(run(&["--token-plugin", "TokenMagic", "--token-source", "x"]).is_err());
        assert!(run(&["--token-plugin", "TokenFile", "--token-file", "/t"]).is_err());
        assert!(run(&["--token-file", "/t", "--target-config", "/u"]).is_err());
        // websockify's form may leave the target out when tokens name it.
        let c = run(&["6090", "--token-plugin", "TokenFile", "--token-source", "/t"]).unwrap();
        assert_eq!(c.listen, "0.0.0.0:6090".parse().unwrap());
        assert!(c.relay && c.target.is_none());
        assert!(run(&["6090", "--unix-target", "/s"]).is_ok());
        assert!(run(&["6090"]).is_err(), "no target at all");
    }

    #[test]
    fn web_csp_is_one_printable_line() {
        assert_eq!(run(&[]).unwrap().web_csp, None);
        let c = run(&["--web-csp", "default-src 'self' 'unsafe-inline'"]).unwrap();
        assert_eq!(c.web_csp.as_deref(), Some("default-src 'self' 'unsafe-inline'"));
        assert!(run(&["--web-csp", "a\r\nSet-Cookie: x"]).is_err());
        assert!(run(&["--web-csp", " "]).is_err());
    }

    #[test]
    fn token_directory_reads_every_visible_file() {
        let dir = std::env::temp_dir().join(format!("wsvnc-tokdir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("a.conf"), "one: 127.0.0.1:5901\ntwice: 127.0.0.1:1\n").unwrap();
        std::fs::write(dir.join("b"), "two: unix_socket:/run/vnc.sock\ntwice: 127.0.0.1:2 view_only\n").unwrap();
        std::fs::write(dir.join(".b.swp"), "not a token file\n").unwrap();
        let t = TokenTable::load(&dir).unwrap();
        assert_eq!(t.entries.len(), 3, "{:?}", t.entries);
        assert_eq!(t.entries["one"].addr, TargetAddr::Tcp("127.0.0.1:5901".parse().unwrap()));
        assert_eq!(t.entries["two"].addr, TargetAddr::Unix("/run/vnc.sock".into()));
        assert_eq!(t.entries["twice"].addr, TargetAddr::Tcp("127.0.0.1:2".parse().unwrap()), "later file wins");
        assert!(t.entries["twice"].view_only);
        assert!(t.mtime.is_some());
        // A bad line names its file.
        std::fs::write(dir.join("c"), "broken\n").unwrap();
        let e = TokenTable::load(&dir).unwrap_err();
        assert!(e.0.contains("/c:") && e.0.contains("line 1"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tls_and_proxy_options() {
        let c = run(&["--cert", "/c.pem", "--trusted-proxy", "10.0.0.0/8", "--trusted-proxy=::1"]).unwrap();
        let t = c.tls.unwrap();
        assert_eq!((t.cert.to_str(), t.key.to_str(), t.only), (Some("/c.pem"), Some("/c.pem"), false));
        assert_eq!(c.trusted_proxies.len(), 2);
        let c = run(&["--tls-cert", "/c.pem", "--tls-key", "/k.pem", "--tls-only"]).unwrap();
        assert_eq!(c.tls.unwrap(), TlsFiles { cert: "/c.pem".into(), key: "/k.pem".into(), only: true });
        let c = run(&["--cert=/c.pem", "--ssl-only", "6080", "127.0.0.1:5900"]).unwrap();
        assert!(c.tls.unwrap().only && c.target.is_some());
        assert!(run(&["--ssl-only"]).is_err());
        assert!(run(&["--key", "/k.pem"]).is_err());
        assert!(run(&["--trusted-proxy", "nginx.local"]).is_err());
    }

    #[test]
    fn encodings_by_name() {
        assert_eq!(parse_encodings("zrle, raw,zrle").unwrap(), vec![16, 0]);
    }
}
