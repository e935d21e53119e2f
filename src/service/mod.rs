//! Running under a service manager: the options of `--listen unix:PATH`,
//! `--socket-mode`, `--user`/`--group` and `--pid-file`, what happens
//! between binding and serving (pid file, dropping privileges), and the
//! `sd_notify(3)` protocol ([`notify`]). Socket activation is the
//! listener's business (`server::listen`).
//!
//! Start-up order (main.rs): parse (user and group names resolved) → bind
//! (or inherit) the listening sockets, read certificates and the token
//! source → write the pid file → drop privileges → serve, READY=1.

pub mod notify;
pub mod privdrop;

use std::io;
use std::path::{Path, PathBuf};

use crate::config::ConfigError;
use privdrop::Ids;

/// Default permissions of a Unix listening socket wsvnc creates: owner and
/// group may connect (put the reverse proxy's user in the group, or use
/// `--socket-mode 0666`).
pub const DEFAULT_SOCKET_MODE: u32 = 0o660;

/// Service-manager options. `Default`: none of them.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// `--listen unix:PATH`: serve on a Unix stream socket instead of TCP.
    pub listen_unix: Option<PathBuf>,
    /// `--socket-mode OCTAL` for `listen_unix`.
    pub socket_mode: u32,
    /// `--user`/`--group`, resolved at start: switch to these after binding.
    pub drop_to: Option<Ids>,
    /// `--pid-file PATH`.
    pub pid_file: Option<PathBuf>,
    user: Option<String>,
    group: Option<String>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            listen_unix: None,
            socket_mode: DEFAULT_SOCKET_MODE,
            drop_to: None,
            pid_file: None,
            user: None,
            group: None,
        }
    }
}

impl ServiceConfig {
    /// One of this module's options; `Ok(false)` if `name` is not one.
    pub fn option(&mut self, name: &str, value: &str) -> Result<bool, ConfigError> {
        match name {
            "--socket-mode" => {
                self.socket_mode = match u32::from_str_radix(value.trim_start_matches("0o"), 8) {
                    Ok(m) if m <= 0o777 => m,
                    _ => {
                        return Err(ConfigError(format!(
                            "--socket-mode wants octal permissions like 0660, not '{value}'"
                        )))
                    }
                }
            }
            "--user" => self.user = Some(value.to_string()),
            "--group" => self.group = Some(value.to_string()),
            "--pid-file" => self.pid_file = Some(PathBuf::from(value)),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// After the whole command line: resolve `--user`/`--group` (reads
    /// /etc/passwd and /etc/group, or NSS).
    pub fn finish(&mut self) -> Result<(), ConfigError> {
        self.drop_to = privdrop::resolve(self.user.as_deref(), self.group.as_deref()).map_err(ConfigError)?;
        Ok(())
    }

    /// Owner for a Unix socket wsvnc creates: the user and group it will run as.
    pub fn socket_owner(&self) -> Option<(u32, u32)> {
        self.drop_to.as_ref().map(|ids| (ids.uid.unwrap_or_else(privdrop::current_uid), ids.gid))
    }
}

/// A pid file, removed when dropped (a clean exit) if it still holds our pid.
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Write this process's pid (`PID\n`) to `path`, replacing what was there.
    pub fn write(path: &Path) -> io::Result<PidFile> {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| io::Error::new(e.kind(), format!("cannot write pid file {}: {e}", path.display())))?;
        Ok(PidFile { path: path.to_path_buf() })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let ours = std::fs::read_to_string(&self.path).is_ok_and(|s| s.trim() == std::process::id().to_string());
        if ours {
            if let Err(e) = std::fs::remove_file(&self.path) {
                // After dropping privileges the directory may not be ours.
                log::debug!("cannot remove pid file {}: {e}", self.path.display());
            }
        }
    }
}

/// Between binding and serving: the pid file, then the privilege drop.
pub fn after_bind(cfg: &ServiceConfig) -> io::Result<Option<PidFile>> {
    let pid = cfg.pid_file.as_deref().map(PidFile::write).transpose()?;
    if let Some(ids) = &cfg.drop_to {
        privdrop::drop_to(ids)?;
    }
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use crate::config::{parse_args, Command, Config};

    fn run(args: &[&str]) -> Result<Config, String> {
        match parse_args(args.iter().map(|s| s.to_string())).map_err(|e| e.0)? {
            Command::Run(c) => Ok(c),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn service_options() {
        let c =
            run(&["--listen", "unix:/run/wsvnc/w.sock", "--socket-mode", "0666", "--pid-file", "/run/w.pid"]).unwrap();
        assert_eq!(c.service.listen_unix.as_deref(), Some(std::path::Path::new("/run/wsvnc/w.sock")));
        assert_eq!(c.service.socket_mode, 0o666);
        assert_eq!(c.service.pid_file.as_deref(), Some(std::path::Path::new("/run/w.pid")));
        assert!(c.service.drop_to.is_none());
        assert_eq!(run(&[]).unwrap().service.socket_mode, super::DEFAULT_SOCKET_MODE);
        for bad in ["888", "1777", "rw", ""] {
            assert!(run(&["--socket-mode", bad]).is_err(), "{bad}");
        }
        // Names are resolved at parse time (root exists everywhere).
        let c = run(&["--user", "root", "--group", "0"]).unwrap();
        let ids = c.service.drop_to.unwrap();
        assert_eq!((ids.uid, ids.gid, ids.names.as_str()), (Some(0), 0, "root:0"));
        let c = run(&["--group", "root"]).unwrap();
        assert_eq!(c.service.drop_to.unwrap().uid, None, "--group alone keeps the user");
        assert!(run(&["--user", "no-such-user-wsvnc"]).unwrap_err().contains("no such user"));
        assert!(run(&["--group", "no-such-group-wsvnc"]).unwrap_err().contains("no such group"));
    }
}
