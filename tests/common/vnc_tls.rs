//! What VNC servers need for VeNCrypt in tests: a test PKI made at test time
//! ([`Pki`], with rcgen) and a test-only PAM service for TigerVNC's Plain
//! sub-types ([`PamService`]).
//!
//! Plain authentication in TigerVNC goes through PAM (`-PAMService NAME`,
//! users listed in `-PlainUsers`). Rather than touch the system's users,
//! [`PamService`] writes `/etc/pam.d/wsvnc-test-<offset>-<pid>-<n>` using
//! `pam_userdb` with a Berkeley DB made by `db_load` (Debian `db-util`) in
//! the test's temporary directory, holding exactly one user name and
//! password that exist nowhere else; the file is removed when the guard
//! drops. It needs root (writing /etc/pam.d), as Xvnc's PAM check does.
//! See docs/testing-real-servers.md.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::x11::{require, run, test_offset};

#[path = "../../src/rfb/security/test_pki.rs"]
mod test_pki;

static DIRS: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Scratch {
        let n = DIRS.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("wsvnc-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CA, a server certificate it signed for 127.0.0.1 and localhost (with
/// its key), and an unrelated CA, as PEM files in a directory of its own.
pub struct Pki {
    _dir: Scratch,
    pub ca: PathBuf,
    pub other_ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// SHA-256 of the server certificate (DER).
    pub fingerprint: [u8; 32],
}

impl Pki {
    pub fn new() -> Pki {
        let scratch = Scratch::new("pki");
        let pki = test_pki::generate();
        let write = |name: &str, text: &str| {
            let path = scratch.0.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        Pki {
            ca: write("ca.pem", &pki.ca_pem),
            other_ca: write("other-ca.pem", &pki.other_ca_pem),
            cert: write("server.pem", &pki.cert_pem),
            key: write("server.key", &pki.key_pem),
            fingerprint: wsvnc::rfb::security::tls::fingerprint(&pki.cert_der),
            _dir: scratch,
        }
    }

    /// The pin as the token file writes it.
    pub fn pin(&self) -> String {
        let hex: String = self.fingerprint.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }
}

static PAM_SERVICES: AtomicUsize = AtomicUsize::new(0);

/// A PAM service that accepts exactly `user` with `password`.
pub struct PamService {
    pub name: String,
    pub user: String,
    path: PathBuf,
    _dir: Scratch,
}

impl PamService {
    pub fn new(user: &str, password: &str) -> PamService {
        // SAFETY: a plain syscall.
        let root = unsafe { libc::geteuid() } == 0;
        assert!(root, "the X509Plain tests need root: they add a test-only PAM service under /etc/pam.d");
        let module_dirs = ["/lib/x86_64-linux-gnu/security", "/usr/lib/x86_64-linux-gnu/security", "/lib/security"];
        assert!(
            module_dirs.iter().any(|d| Path::new(d).join("pam_userdb.so").exists()),
            "pam_userdb.so not found: install the Debian package libpam-modules"
        );
        let db_load = require("db_load", "db-util");
        let scratch = Scratch::new("pam");
        let dir = &scratch.0;
        let input = dir.join("users.txt");
        std::fs::write(&input, format!("{user}\n{password}\n")).unwrap();
        let db = dir.join("users");
        run(Command::new(db_load).args(["-T", "-t", "hash", "-f"]).arg(&input).arg(db.with_extension("db")));
        std::fs::remove_file(&input).unwrap();
        let n = PAM_SERVICES.fetch_add(1, Ordering::Relaxed);
        let name = format!("wsvnc-test-{}-{}-{n}", test_offset(), std::process::id());
        let path = Path::new("/etc/pam.d").join(&name);
        let text = format!(
            "# Test-only service of wsvnc's tests (tests/common/vnc_tls.rs), removed when the test ends.\n\
             auth required pam_userdb.so db={}\n\
             account required pam_permit.so\n",
            db.display()
        );
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        PamService { name, user: user.to_string(), path, _dir: scratch }
    }
}

impl Drop for PamService {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
