//! Embeds the viewer (`web/`) into the binary.
//!
//! Walks `web/` recursively (or `$WSVNC_WEB_DIR` when set, for testing without
//! touching `web/`) and writes `$OUT_DIR/assets.rs`: a slice literal of
//! `Asset`s sorted by path, which `src/http/assets.rs` includes. A missing or
//! empty `web/` gives an empty table.
//!
//! Each file is gzipped (RFC 1952, best compression, mtime 0 so builds are
//! reproducible); the gzip member is embedded instead of the file when it saves
//! at least [`MIN_GZIP_SAVING`] bytes and an eighth of the file, the file itself
//! otherwise (already-compressed images, tiny files). Both entity-tags are
//! computed here: one for the file, one for its gzip representation.
//! Hidden files (names starting with '.') and names the URL path rules would
//! refuse (control characters, backslashes) are skipped.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

#[path = "src/http/mime.rs"]
#[allow(dead_code)]
mod mime;

#[path = "src/http/etag.rs"]
#[allow(dead_code)]
mod etag;

/// Smallest saving, in bytes, for which a file is embedded gzipped.
const MIN_GZIP_SAVING: usize = 256;

/// Directory nesting limit, so a symlink loop cannot hang the build.
const MAX_DEPTH: usize = 16;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/http/mime.rs");
    println!("cargo:rerun-if-changed=src/http/etag.rs");
    println!("cargo:rerun-if-env-changed=WSVNC_WEB_DIR");
    link_args();

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

    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let gz_dir = out_dir.join("web-gz");
    fs::create_dir_all(&gz_dir).expect("create $OUT_DIR/web-gz");
    let mut entries = Vec::with_capacity(files.len());
    for (i, (url, file)) in files.iter().enumerate() {
        let body = match fs::read(file) {
            Ok(b) => b,
            Err(e) => panic!("reading {}: {}", file.display(), e),
        };
        let Some(file_str) = file.to_str() else {
            println!("cargo:warning=skipping non-UTF-8 path {}", file.display());
            continue;
        };
        let gz = gzip(&body);
        let saving = body.len().saturating_sub(gz.len());
        let (stored, gz_etag) = if saving >= MIN_GZIP_SAVING && saving >= body.len() / 8 {
            let gz_path = gz_dir.join(format!("{i}.gz"));
            write_if_changed(&gz_path, &gz);
            let gz_str = gz_path.to_str().expect("OUT_DIR is UTF-8").to_string();
            (gz_str, Some(etag::etag_for(&gz)))
        } else {
            (file_str.to_string(), None)
        };
        entries.push(format!(
            "    Asset::new({:?}, {:?}, {:?}, {}, include_bytes!({:?}), {:?}),",
            url,
            mime::mime_for(url),
            etag::etag_for(&body),
            body.len(),
            stored,
            gz_etag,
        ));
    }
    let mut out = format!("static TABLE: [Asset; {}] = [\n", entries.len());
    for e in &entries {
        writeln!(out, "{e}").expect("write to String");
    }
    out.push_str("];\n");

    write_if_changed(&out_dir.join("assets.rs"), out.as_bytes());
}

/// `body` as one gzip member, best compression, no name, mtime 0.
fn gzip(body: &[u8]) -> Vec<u8> {
    let mut enc = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::best());
    enc.write_all(body).expect("gzip into memory");
    enc.finish().expect("gzip into memory")
}

/// Rewrites `dest` only when its content changes, so unchanged output does not look new.
fn write_if_changed(dest: &Path, bytes: &[u8]) {
    if fs::read(dest).ok().as_deref() != Some(bytes) {
        fs::write(dest, bytes).unwrap_or_else(|e| panic!("writing {}: {}", dest.display(), e));
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

/// Linker arguments that shrink the release `wsvnc` binary without touching
/// code generation (README "Size"). They need LLD: rustc 1.90+ links
/// x86_64-unknown-linux-gnu with its bundled rust-lld by default, and the musl
/// targets are pointed at the same rust-lld here (`-fuse-ld=lld` through the
/// `gcc-ld` directory, the way rustc does it), so all Linux targets link alike:
///
/// * no unwind tables (`.eh_frame`, `.eh_frame_hdr`: ~210 KiB): the release
///   profile aborts on panic, so nothing unwinds; a panic still prints its
///   message, only `RUST_BACKTRACE` has no frames to show (a stripped binary
///   has no names for them anyway). Release builds only: tests unwind.
/// * RELR packed relative relocations (`-z pack-relative-relocs`: ~75 KiB of
///   `.rela.dyn` on a PIE, still position-independent): musl (1.2.4+ applies
///   them in its static-PIE start-up code; Rust bundles 1.2.5) and glibc
///   2.36+, checked on the build host because older glibc ignores them.
/// * identical code folding (`--icf=all`, ~14 KiB).
///
/// Without rust-lld (an older or distribution rustc) none of this is done;
/// `WSVNC_PLAIN_LINK=1` turns it off too.
fn link_args() {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    println!("cargo:rerun-if-env-changed=WSVNC_PLAIN_LINK");
    if var("CARGO_CFG_TARGET_OS") != "linux" || !var("WSVNC_PLAIN_LINK").is_empty() {
        return;
    }
    let Some(gcc_ld) = rust_lld_dir() else { return };
    let env = var("CARGO_CFG_TARGET_ENV");
    let mut args = Vec::new();
    match env.as_str() {
        "gnu" if var("TARGET") == "x86_64-unknown-linux-gnu" => {}
        "musl" => {
            args.push(format!("-B{}", gcc_ld.display()));
            args.push("-fuse-ld=lld".to_string());
        }
        _ => return,
    }
    if var("PROFILE") == "release" {
        let script = PathBuf::from(var("OUT_DIR")).join("no-unwind-tables.ld");
        write_if_changed(&script, b"SECTIONS { /DISCARD/ : { *(.eh_frame) *(.eh_frame_hdr) } } INSERT AFTER .text;\n");
        args.push(format!("-Wl,-T,{}", script.display()));
    }
    if env == "musl" || (var("TARGET") == var("HOST") && host_glibc_has_relr()) {
        args.push("-Wl,-z,pack-relative-relocs".to_string());
    }
    args.push("-Wl,--icf=all".to_string());
    for a in args {
        println!("cargo:rustc-link-arg-bin=wsvnc={a}");
    }
}

/// glibc 2.36 or later (`getconf GNU_LIBC_VERSION`).
fn host_glibc_has_relr() -> bool {
    let Ok(out) = std::process::Command::new("getconf").arg("GNU_LIBC_VERSION").output() else { return false };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut v = text.trim().trim_start_matches("glibc ").split('.').map(|n| n.parse::<u32>().unwrap_or(0));
    (v.next().unwrap_or(0), v.next().unwrap_or(0)) >= (2, 36)
}

/// rust-lld's `gcc-ld` directory (holding `ld.lld`) when rustc is 1.90+,
/// which links x86_64-unknown-linux-gnu with it by default.
fn rust_lld_dir() -> Option<PathBuf> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let run = |arg: &str| std::process::Command::new(&rustc).args(arg.split(' ')).output().ok();
    let version = String::from_utf8_lossy(&run("--version")?.stdout).to_string();
    let minor = version.split_whitespace().nth(1).and_then(|v| v.split('.').nth(1)?.parse::<u32>().ok());
    if !version.starts_with("rustc 1.") || minor.unwrap_or(0) < 90 {
        return None;
    }
    let sysroot = PathBuf::from(String::from_utf8_lossy(&run("--print sysroot")?.stdout).trim());
    let dir = sysroot.join("lib/rustlib").join(std::env::var("HOST").ok()?).join("bin/gcc-ld");
    dir.join("ld.lld").exists().then_some(dir)
}
