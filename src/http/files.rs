//! Finding the file for a clean path: in the embedded table, or under a
//! `--web DIR` on disk (read on request; meant for development).
//!
//! Both sources follow the same rules: `/` and `/dir/` mean `index.html` in that
//! directory; a directory named without its trailing slash is redirected to it
//! (so relative URLs in its index resolve); there are no listings; hidden names
//! (a segment starting with '.') are 404. On disk, the candidate is
//! canonicalized (resolving every symlink) and must still lie under the
//! canonical root, so neither `..` nor a symlink can reach outside it.

use super::assets;
use super::etag::etag_for;
use super::mime::mime_for;
use super::path::CleanPath;
use std::borrow::Cow;
use std::fs;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};

/// Largest file served from `--web DIR`; bigger files get 500 (a server-side
/// configuration problem, not the client's).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// A file to send.
#[derive(Debug)]
pub struct File {
    pub body: Cow<'static, [u8]>,
    pub mime: &'static str,
    /// Quoted entity-tag.
    pub etag: Cow<'static, str>,
    /// `body` is gzip (`Content-Encoding: gzip`).
    pub gzip: bool,
    /// The representation depends on `Accept-Encoding` (`Vary: Accept-Encoding`).
    pub vary: bool,
}

#[derive(Debug)]
pub enum Found {
    File(File),
    /// A directory named without its trailing slash: redirect to `raw + "/"`.
    Redirect,
}

/// Looks up `p` in `web_dir` (when set) or in the embedded table; an embedded
/// file stored gzipped comes gzipped when `accept_gzip`. Errors are statuses:
/// 404 not found / hidden / outside the root, 403 permission denied, 500 too
/// big or an I/O error.
pub fn find(web_dir: Option<&Path>, p: &CleanPath, accept_gzip: bool) -> Result<Found, u16> {
    find_capped(web_dir, p, MAX_FILE_BYTES, accept_gzip)
}

pub(crate) fn find_capped(web_dir: Option<&Path>, p: &CleanPath, cap: u64, accept_gzip: bool) -> Result<Found, u16> {
    if p.segments.iter().any(|s| s.starts_with('.')) {
        return Err(404);
    }
    match web_dir {
        Some(root) => from_disk(root, p, cap),
        None => embedded(p, accept_gzip),
    }
}

/// URL key of `p` in the embedded table ("/a/b", or "/a/index.html" for "/a/").
fn key(p: &CleanPath, index: bool) -> String {
    let mut k = String::with_capacity(p.decoded.len() + 11);
    for s in &p.segments {
        k.push('/');
        k.push_str(s);
    }
    if index {
        k.push_str("/index.html");
    }
    k
}

fn embedded(p: &CleanPath, accept_gzip: bool) -> Result<Found, u16> {
    let k = key(p, p.trailing_slash);
    if let Some(a) = assets::lookup(&k) {
        let r = a.representation(accept_gzip).ok_or(500u16)?;
        return Ok(Found::File(File {
            body: Cow::Borrowed(r.body),
            mime: a.mime,
            etag: Cow::Borrowed(r.etag),
            gzip: r.gzip,
            vary: a.is_gzipped(),
        }));
    }
    if !p.trailing_slash && assets::lookup(&key(p, true)).is_some() {
        return Ok(Found::Redirect);
    }
    Err(404)
}

fn io_status(e: &std::io::Error) -> u16 {
    match e.kind() {
        ErrorKind::NotFound | ErrorKind::NotADirectory => 404,
        ErrorKind::PermissionDenied => 403,
        _ => 500,
    }
}

/// Canonicalizes `candidate` and checks it is inside `root` (already canonical)
/// with no hidden component below the root.
fn inside(root: &Path, candidate: &Path) -> Result<PathBuf, u16> {
    let real = candidate.canonicalize().map_err(|e| io_status(&e))?;
    let Ok(rel) = real.strip_prefix(root) else {
        log::warn!("http: {} resolves outside the web root, refused", candidate.display());
        return Err(404);
    };
    if rel.components().any(|c| c.as_os_str().to_string_lossy().starts_with('.')) {
        return Err(404);
    }
    Ok(real)
}

fn from_disk(root: &Path, p: &CleanPath, cap: u64) -> Result<Found, u16> {
    let root = root.canonicalize().map_err(|e| {
        log::warn!("http: web root {}: {}", root.display(), e);
        404u16
    })?;
    let mut candidate = root.clone();
    candidate.extend(&p.segments);
    let mut real = inside(&root, &candidate)?;
    let mut meta = fs::metadata(&real).map_err(|e| io_status(&e))?;
    let mut name = p.segments.last().map_or("index.html", |s| s.as_str());
    if meta.is_dir() {
        real = inside(&root, &real.join("index.html"))?;
        meta = fs::metadata(&real).map_err(|e| io_status(&e))?;
        if !meta.is_file() {
            return Err(404);
        }
        if !p.trailing_slash {
            return Ok(Found::Redirect);
        }
        name = "index.html";
    } else if p.trailing_slash {
        return Err(404); // "/file.js/" names a directory that is not there
    }
    if !meta.is_file() {
        return Err(404);
    }
    if meta.len() > cap {
        log::warn!("http: {} is {} bytes, over the {} byte limit", real.display(), meta.len(), cap);
        return Err(500);
    }
    // Read at most cap+1 bytes: the file may have grown since the stat.
    let mut body = Vec::with_capacity(meta.len() as usize);
    fs::File::open(&real).and_then(|f| f.take(cap + 1).read_to_end(&mut body)).map_err(|e| io_status(&e))?;
    if body.len() as u64 > cap {
        return Err(500);
    }
    let etag = etag_for(&body);
    Ok(Found::File(File {
        body: Cow::Owned(body),
        mime: mime_for(name),
        etag: Cow::Owned(etag),
        gzip: false,
        vary: false,
    }))
}
