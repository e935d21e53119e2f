//! The helper thread: blocking work that must not stall the loop — reading
//! `--web DIR` files, reading and resolving the token file (getaddrinfo),
//! reading certificates — with results handed back through a channel and
//! the loop's `mio::Waker`. It also watches the token file (or directory)
//! and the certificate files (every `WATCH_EVERY`) and reloads what changed.
//! Not on the data path: nothing a connection sends or receives passes
//! through it. Started only when there is such work (a token file, TLS, or
//! `--web DIR`); it ends when the server is dropped.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use log::{error, info};
use mio::Waker;

use crate::app::Job;
use crate::config::{ConfigError, TokenTable};
use crate::http::Action;
use crate::transport::tls;

/// How often watched files are checked for changes.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// What the loop asks of the helper.
pub enum Request {
    Job(Job),
    /// SIGHUP: reload the token file and certificates now, changed or not.
    ReloadNow,
}

/// What the helper hands back.
pub enum Done {
    File { key: usize, id: u64, action: Action },
    Tokens(Result<TokenTable, ConfigError>),
    Tls(Result<tls::Config, tls::TlsError>),
}

/// Files to watch.
pub struct Watch {
    pub token_file: Option<PathBuf>,
    /// Modification time of the token file (or directory: its latest file,
    /// `config::token_source_mtime`) as loaded at start-up.
    pub token_mtime: Option<SystemTime>,
    /// Certificate chain and key files.
    pub tls: Option<(PathBuf, PathBuf)>,
}

pub struct Worker {
    requests: Sender<Request>,
    pub done: Receiver<Done>,
}

impl Worker {
    pub fn spawn(watch: Watch, waker: Arc<Waker>) -> std::io::Result<Worker> {
        let (requests, rx) = mpsc::channel();
        let (tx, done) = mpsc::channel();
        std::thread::Builder::new().name("wsvnc-helper".into()).spawn(move || run(watch, rx, tx, waker))?;
        Ok(Worker { requests, done })
    }

    pub fn send(&self, r: Request) {
        let _ = self.requests.send(r);
    }
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// A watched file's modification time as last seen: a missing or broken
/// file is reported once per change, not per check.
struct Seen {
    mtime: Option<SystemTime>,
}

impl Seen {
    /// Has the file changed since last seen? Updates the record.
    fn changed(&mut self, now: Option<SystemTime>) -> bool {
        let changed = now != self.mtime;
        self.mtime = now;
        changed
    }
}

fn run(watch: Watch, rx: Receiver<Request>, tx: Sender<Done>, waker: Arc<Waker>) {
    let mut tokens = watch.token_file.as_ref().map(|_| Seen { mtime: watch.token_mtime });
    let mut certs = watch.tls.as_ref().map(|(c, k)| (Seen { mtime: mtime(c) }, Seen { mtime: mtime(k) }));
    let send = |d: Done| {
        let ok = tx.send(d).is_ok();
        let _ = waker.wake();
        ok
    };
    let mut last_check = std::time::Instant::now();
    loop {
        let (force, job) = match rx.recv_timeout(WATCH_EVERY) {
            Ok(Request::Job(j)) => (false, Some(j)),
            Ok(Request::ReloadNow) => (true, None),
            Err(RecvTimeoutError::Timeout) => (false, None),
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if let Some(Job::File { key, id, req }) = job {
            if !send(Done::File { key, id, action: (*req).run() }) {
                return;
            }
            if last_check.elapsed() < WATCH_EVERY {
                continue;
            }
        }
        last_check = std::time::Instant::now();
        if let (Some(path), Some(seen)) = (&watch.token_file, tokens.as_mut()) {
            // A token directory changes when a file in it is added,
            // removed, renamed or edited (`token_source_mtime`).
            let now = crate::config::token_source_mtime(path);
            if seen.changed(now) || force {
                let loaded = TokenTable::load(path);
                match &loaded {
                    Ok(t) => info!("token file {} loaded: {} target(s)", path.display(), t.entries.len()),
                    Err(e) => error!("{e}; keeping the previous token table"),
                }
                if !send(Done::Tokens(loaded)) {
                    return;
                }
            }
        }
        if let (Some((cert, key)), Some((seen_cert, seen_key))) = (&watch.tls, certs.as_mut()) {
            let cert_changed = seen_cert.changed(mtime(cert));
            let key_changed = seen_key.changed(mtime(key));
            if cert_changed || key_changed || force {
                let loaded = tls::load(cert, key);
                match &loaded {
                    Ok(_) => info!("certificate {} reloaded; new connections use it", cert.display()),
                    Err(e) => error!("{e}; keeping the previous certificate"),
                }
                if !send(Done::Tls(loaded)) {
                    return;
                }
            }
        }
    }
}
