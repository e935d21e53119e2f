//! Media types by file extension, and the caching policy that goes with them.
//!
//! Self-contained on purpose: `build.rs` includes this file with `#[path]` so the
//! embedded asset table and files served from `--web DIR` get the same types.

/// Extension (lower case, no dot) → media type. Text types carry `charset=utf-8`
/// (RFC 9110 §8.3.1); `text/javascript` is the registered type for JS and
/// modules (RFC 9239 §3), which browsers require for `<script type=module>`.
const TABLE: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("txt", "text/plain; charset=utf-8"),
    ("md", "text/markdown; charset=utf-8"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("ico", "image/x-icon"),
    ("json", "application/json"),
    ("map", "application/json"),
    ("webmanifest", "application/manifest+json"),
    ("wasm", "application/wasm"),
    ("woff2", "font/woff2"),
    ("woff", "font/woff"),
];

/// Fallback for unknown extensions: never sniffed as script (we also send
/// `X-Content-Type-Options: nosniff`).
pub const DEFAULT_MIME: &str = "application/octet-stream";

/// The media type for the last segment of `path` ("/a/b.JS" → text/javascript).
/// A leading dot is not an extension (".js" alone is a hidden file, not JS).
pub fn mime_for(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext,
        _ => return DEFAULT_MIME,
    };
    TABLE.iter().find(|(e, _)| e.eq_ignore_ascii_case(ext)).map(|(_, m)| *m).unwrap_or(DEFAULT_MIME)
}

/// True for HTML documents (they get `no-cache` and a Content-Security-Policy).
pub fn is_html(mime: &str) -> bool {
    mime.starts_with("text/html")
}
