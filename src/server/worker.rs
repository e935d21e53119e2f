//! The helper thread: blocking work that must not stall the loop — reading
//! `--web DIR` files, reading and resolving the token file (getaddrinfo),
//! reading certificates — with results handed back through a channel and
//! the loop's `mio::Waker`. It also watches the token file (or directory)
//! and the certificate files (every `WATCH_EVERY`) and reloads what changed.
//! Not on the data path: nothing a connection sends or receives passes
//! through it. Started only when there is such work (a token file, TLS, or
//! `--web DIR`); it ends when the server is dropped.
//!
//! Tokens from Redis are read by a second helper thread of their own
//! (`tokens::redis`: every `POLL_EVERY` and on SIGHUP), so that a slow or
//! unreachable Redis never delays a file answer.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use log::{error, info};
use mio::Waker;

use crate::app::Job;
use crate::config::{ConfigError, Target, TokenTable};
use crate::http::Action;
use crate::tokens::redis::{self, RedisSource};
use crate::transport::tls;
use std::collections::HashMap;

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
    File {
        key: usize,
        id: u64,
        action: Action,
    },
    Tokens(Result<TokenTable, ConfigError>),
    Tls(Result<tls::Config, tls::TlsError>),
    /// A reload pass asked for by SIGHUP is over (one per thread asked).
    Reloaded,
}

/// Files to watch.
pub struct Watch {
    pub token_file: Option<PathBuf>,
    /// Modification time of the token file (or directory: its latest file,
    /// `config::token_source_mtime`) as loaded at start-up.
    pub token_mtime: Option<SystemTime>,
    /// Certificate chain and key files.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Tokens from Redis.
    pub token_redis: Option<RedisWatch>,
}

/// Where the Redis thread starts from.
pub struct RedisWatch {
    pub src: RedisSource,
    /// The table as read at start-up.
    pub seen: HashMap<String, Target>,
    /// Why the start-up read failed (already logged).
    pub error: Option<String>,
}

pub struct Worker {
    requests: Sender<Request>,
    /// SIGHUP for the Redis thread (only `ReloadNow` is sent: one channel
    /// type for both threads keeps the binary smaller).
    redis: Option<Sender<Request>>,
    pub done: Receiver<Done>,
}

impl Worker {
    pub fn spawn(mut watch: Watch, waker: Arc<Waker>) -> std::io::Result<Worker> {
        let (requests, rx) = mpsc::channel();
        let (tx, done) = mpsc::channel();
        let redis = match watch.token_redis.take() {
            Some(start) => {
                let (hup, hup_rx) = mpsc::channel();
                let (tx, waker) = (tx.clone(), waker.clone());
                std::thread::Builder::new()
                    .name("wsvnc-redis".into())
                    .spawn(move || poll_redis(start, hup_rx, tx, waker))?;
                Some(hup)
            }
            None => None,
        };
        std::thread::Builder::new().name("wsvnc-helper".into()).spawn(move || run(watch, rx, tx, waker))?;
        Ok(Worker { requests, redis, done })
    }

    pub fn send(&self, r: Request) {
        let _ = self.requests.send(r);
    }

    /// SIGHUP: reload everything now. Returns how many `Done::Reloaded`
    /// will follow.
    pub fn send_reload(&self) -> usize {
        let files = self.requests.send(Request::ReloadNow).is_ok() as usize;
        files + self.redis.as_ref().is_some_and(|r| r.send(Request::ReloadNow).is_ok()) as usize
    }
}

/// The Redis thread: read the table every `POLL_EVERY` or when asked
/// (SIGHUP); hand it to the loop when it differs from the last one handed.
/// Errors are logged when they change, and the loop keeps its table.
fn poll_redis(start: RedisWatch, hup: Receiver<Request>, tx: Sender<Done>, waker: Arc<Waker>) {
    let RedisWatch { src, seen: mut last, error: mut last_error } = start;
    loop {
        let forced = match hup.recv_timeout(redis::POLL_EVERY) {
            Ok(_) => true,
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut answers = Vec::new();
        match redis::load(&src) {
            Ok(table) => {
                if last_error.take().is_some() {
                    info!("tokens from {src}: reachable again");
                }
                if table.entries != last {
                    info!("tokens from {src} loaded: {} target(s)", table.entries.len());
                    last = table.entries.clone();
                    answers.push(Done::Tokens(Ok(table)));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                if last_error.as_deref() != Some(msg.as_str()) {
                    error!("cannot read tokens from {src}: {msg}; keeping the previous token table");
                    last_error = Some(msg);
                }
            }
        }
        if forced {
            answers.push(Done::Reloaded);
        }
        for a in answers {
            if tx.send(a).is_err() {
                return;
            }
        }
        let _ = waker.wake();
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
        if force && !send(Done::Reloaded) {
            return;
        }
    }
}
