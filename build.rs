//! Embeds the viewer (`web/`) into the binary.
//!
//! Walks `web/` recursively (or `$WSVNC_WEB_DIR` when set, for testing without
//! touching `web/`) and writes `$OUT_DIR/assets.rs`: a slice literal of
//! `Asset { path, body: include_bytes!(..), mime, etag }` sorted by path, which
//! `src/http/assets.rs` includes. A missing or empty `web/` gives an empty table.
//! Hidden files (names starting with '.') and names the URL path rules would
//! refuse (control characters, backslashes) are skipped.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

#[path = "src/http/mime.rs"]
#[allow(dead_code)]
mod mime;

#[path = "src/http/etag.rs"]
#[allow(dead_code)]
mod etag;

/// Directory nesting limit, so a symlink loop cannot hang the build.
const MAX_DEPTH: usize = 16;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/http/mime.rs");
    println!("cargo:rerun-if-changed=src/http/etag.rs");
    println!("cargo:rerun-if-env-changed=WSVNC_WEB_DIR");

    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let web = match std::env::var_os("WSVNC_WEB_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => manifest.join("web"),
    };
    // Watching the directory itself catches files being added or removed;
    // a missing directory is watched too, so creating it triggers a rebuild.
    println!("cargo:rerun-if-changed={}", web.display());

    let mut files = Vec::new();
    if web.is_dir() {
        walk(&web, "", 0, &mut files);
    }
    files.sort();

    let mut out = String::from("&[\n");
    for (url, file) in &files {
        let body = match fs::read(file) {
            Ok(b) => b,
            Err(e) => panic!("reading {}: {}", file.display(), e),
        };
        let Some(file_str) = file.to_str() else {
            println!("cargo:warning=skipping non-UTF-8 path {}", file.display());
            continue;
        };
        writeln!(
            out,
            "    Asset {{ path: {:?}, body: include_bytes!({:?}), mime: {:?}, etag: {:?} }},",
            url,
            file_str,
            mime::mime_for(url),
            etag::etag_for(&body),
        )
        .expect("write to String");
    }
    out.push_str("]\n");

    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let dest = out_dir.join("assets.rs");
    // Rewrite only on change, so an unchanged table does not look new.
    if fs::read_to_string(&dest).ok().as_deref() != Some(out.as_str()) {
        fs::write(&dest, out).expect("write assets.rs");
    }
}

/// Collects (url path, file path) under `dir`; `prefix` is the URL path of `dir`
/// without its trailing '/' ("" for the root).
fn walk(dir: &Path, prefix: &str, depth: usize, files: &mut Vec<(String, PathBuf)>) {
    if depth > MAX_DEPTH {
        println!("cargo:warning=web/: nesting deeper than {} at {}, skipped", MAX_DEPTH, dir.display());
        return;
    }
    println!("cargo:rerun-if-changed={}", dir.display());
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => panic!("reading directory {}: {}", dir.display(), e),
    };
    for entry in entries {
        let entry = entry.expect("directory entry");
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            println!("cargo:warning=skipping non-UTF-8 name {}", path.display());
            continue;
        };
        if name.starts_with('.') || name.chars().any(|c| c.is_control() || c == '\\') {
            continue;
        }
        // Follows symlinks: a linked file or directory is embedded like a real one.
        let Ok(meta) = fs::metadata(&path) else {
            println!("cargo:warning=skipping unreadable {}", path.display());
            continue;
        };
        let url = format!("{}/{}", prefix, name);
        if meta.is_dir() {
            walk(&path, &url, depth + 1, files);
        } else if meta.is_file() {
            println!("cargo:rerun-if-changed={}", path.display());
            files.push((url, path));
        }
    }
}
