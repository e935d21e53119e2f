//! The viewer's files, embedded at build time.
//!
//! `build.rs` walks `web/` (or `$WSVNC_WEB_DIR` when set) and writes
//! `$OUT_DIR/assets.rs`: the table of [`Asset`]s sorted by `path`. Files that
//! compress well are embedded as gzip members (RFC 1952) and sent as they are
//! to clients that accept gzip (`Content-Encoding: gzip`, RFC 9110 §8.4); for
//! the others such a file is decompressed once, on first request, and kept.
//! Lookup is an exact match on the decoded URL path; there is no filesystem
//! access and no way to name anything that is not in the table.

use flate2::{Crc, Decompress, FlushDecompress, Status};
use std::sync::OnceLock;

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// URL path, e.g. "/index.html", "/js/main.js".
    pub path: &'static str,
    pub mime: &'static str,
    /// Quoted strong entity-tag of the file itself (see `etag.rs`), computed at
    /// build time.
    pub etag: &'static str,
    /// Length of the file itself.
    pub len: usize,
    /// The gzip member when `gz_etag` is set, else the file itself.
    stored: &'static [u8],
    /// Entity-tag of the gzip representation, when the file is stored gzipped
    /// (a different representation has a different strong tag, RFC 9110 §8.8.3).
    gz_etag: Option<&'static str>,
    /// The file decompressed, once a client without gzip asked for it.
    plain: OnceLock<Option<Box<[u8]>>>,
}

/// One representation of an asset, ready to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub body: &'static [u8],
    pub etag: &'static str,
    /// The body is gzip: send `Content-Encoding: gzip`.
    pub gzip: bool,
}

impl Asset {
    /// Used by the generated table only.
    const fn new(
        path: &'static str,
        mime: &'static str,
        etag: &'static str,
        len: usize,
        stored: &'static [u8],
        gz_etag: Option<&'static str>,
    ) -> Asset {
        Asset { path, mime, etag, len, stored, gz_etag, plain: OnceLock::new() }
    }

    /// Whether the file is embedded gzipped (responses then vary on
    /// `Accept-Encoding`).
    pub fn is_gzipped(&self) -> bool {
        self.gz_etag.is_some()
    }

    /// The file itself; `None` only if the embedded gzip member is corrupt
    /// (it never is in a binary built by `build.rs`).
    pub fn body(&'static self) -> Option<&'static [u8]> {
        if self.gz_etag.is_none() {
            return Some(self.stored);
        }
        self.plain.get_or_init(|| gunzip(self.stored, self.len)).as_deref()
    }

    /// The representation for a client that does (`accept_gzip`) or does not
    /// accept gzip.
    pub fn representation(&'static self, accept_gzip: bool) -> Option<Repr> {
        match self.gz_etag {
            Some(etag) if accept_gzip => Some(Repr { body: self.stored, etag, gzip: true }),
            _ => Some(Repr { body: self.body()?, etag: self.etag, gzip: false }),
        }
    }
}

/// Decompresses one gzip member as `build.rs` writes it (RFC 1952 §2.3: a
/// 10-byte header without optional fields, raw deflate, CRC-32 and ISIZE) that
/// must hold exactly `len` bytes.
fn gunzip(gz: &[u8], len: usize) -> Option<Box<[u8]>> {
    let out = gz.strip_prefix(&[0x1f, 0x8b, 8, 0]).and_then(|rest| inflate(rest.get(6..)?, len));
    if out.is_none() {
        log::error!("http: an embedded file does not decompress to its {} bytes", len);
    }
    out
}

fn inflate(deflate: &[u8], len: usize) -> Option<Box<[u8]>> {
    let mut out = Vec::with_capacity(len);
    let mut z = Decompress::new(false);
    let status = z.decompress_vec(deflate, &mut out, FlushDecompress::Finish).ok()?;
    let trailer = deflate.get(usize::try_from(z.total_in()).ok()?..)?;
    let word = |i: usize| Some(u32::from_le_bytes(trailer.get(i..i + 4)?.try_into().ok()?));
    let mut crc = Crc::new();
    crc.update(&out);
    let whole = status == Status::StreamEnd && trailer.len() == 8 && out.len() == len;
    (whole && word(0)? == crc.sum() && word(4)? as usize == len).then(|| out.into_boxed_slice())
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// All embedded files, sorted by `path` (empty when `web/` is missing or empty).
pub static ASSETS: &[Asset] = &TABLE;

/// The asset at exactly `path` (decoded, leading '/').
pub fn lookup(path: &str) -> Option<&'static Asset> {
    ASSETS.binary_search_by(|a| a.path.cmp(path)).ok().and_then(|i| ASSETS.get(i))
}

#[cfg(test)]
mod tests {
    use super::gunzip;
    use std::io::Write;

    fn gzip(body: &[u8]) -> Vec<u8> {
        let mut enc = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::best());
        enc.write_all(body).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn gunzip_checks_everything() {
        let body = b"let a = 1; let a = 1; let a = 1; let a = 1;".repeat(20);
        let gz = gzip(&body);
        assert_eq!(gunzip(&gz, body.len()).as_deref(), Some(body.as_slice()));
        assert_eq!(gunzip(&gzip(b""), 0).as_deref(), Some(&b""[..]));
        // Wrong length either way, a flipped bit anywhere, truncation, trailing bytes.
        assert_eq!(gunzip(&gz, body.len() - 1), None);
        assert_eq!(gunzip(&gz, body.len() + 1), None);
        for i in 0..gz.len() {
            let mut bad = gz.clone();
            bad[i] ^= 0x10;
            if i == 8 || i == 9 {
                continue; // XFL and OS: informational only (RFC 1952 §2.3.1)
            }
            if (4..8).contains(&i) {
                continue; // MTIME: informational only
            }
            assert_eq!(gunzip(&bad, body.len()), None, "byte {i}");
        }
        for n in 0..gz.len() {
            assert_eq!(gunzip(&gz[..n], body.len()), None, "{n} bytes");
        }
        let mut long = gz.clone();
        long.push(0);
        assert_eq!(gunzip(&long, body.len()), None);
    }
}
