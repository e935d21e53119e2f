//! The viewer's files, embedded at build time.
//!
//! `build.rs` walks `web/` (or `$WSVNC_WEB_DIR` when set) and writes
//! `$OUT_DIR/assets.rs`: a slice literal of [`Asset`]s sorted by `path`, each body
//! an `include_bytes!`. Lookup is an exact match on the decoded URL path; there
//! is no filesystem access and no way to name anything that is not in the table.

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// URL path, e.g. "/index.html", "/js/main.js".
    pub path: &'static str,
    pub body: &'static [u8],
    pub mime: &'static str,
    /// Quoted strong entity-tag (see `etag.rs`), computed at build time.
    pub etag: &'static str,
}

/// All embedded files, sorted by `path` (empty when `web/` is missing or empty).
pub static ASSETS: &[Asset] = include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// The asset at exactly `path` (decoded, leading '/').
pub fn lookup(path: &str) -> Option<&'static Asset> {
    ASSETS.binary_search_by(|a| a.path.cmp(path)).ok().and_then(|i| ASSETS.get(i))
}
