//! `--user NAME` / `--group NAME`: give up root after the listening sockets
//! are bound (ports below 1024, sockets in root-owned directories) and the
//! certificates are read.
//!
//! Order (POSIX: once the uid is not 0 the process may no longer change its
//! groups): `setgroups([gid])` drops every supplementary group, then
//! `setresgid(gid)`, then `setresuid(uid)` (real, effective and saved, so
//! there is no way back). Then it checks: every id is the one asked for,
//! and `setuid(0)` fails. Any failure is an error and the process does not
//! serve, so a daemon asked to drop root never runs as root by accident.
//! glibc and musl apply these calls to every thread of the process.

use std::ffi::CString;
use std::io;

/// What to switch to. `uid` None: `--group` alone (keep the user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub uid: Option<u32>,
    pub gid: u32,
    /// For messages: `nobody:nogroup`.
    pub names: String,
}

pub fn current_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// A user's uid and primary gid (a name, or a number).
fn lookup_user(name: &str) -> Result<(u32, u32), String> {
    let c = CString::new(name).map_err(|_| format!("--user {name:?}: not a user name"))?;
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 16 << 10];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwnam_r fills `pw` with pointers into `buf`, which outlives
    // every use of them here; `out` is null or `&mut pw`.
    let rc = unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
    if rc == 0 && !out.is_null() {
        return Ok((pw.pw_uid, pw.pw_gid));
    }
    match name.parse::<u32>() {
        Ok(uid) => Ok((uid, uid)),
        Err(_) => Err(format!("--user {name}: no such user")),
    }
}

/// A group's gid (a name, or a number).
fn lookup_group(name: &str) -> Result<u32, String> {
    let c = CString::new(name).map_err(|_| format!("--group {name:?}: not a group name"))?;
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 64 << 10];
    let mut out: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as in lookup_user, for getgrnam_r.
    let rc = unsafe { libc::getgrnam_r(c.as_ptr(), &mut gr, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
    if rc == 0 && !out.is_null() {
        return Ok(gr.gr_gid);
    }
    name.parse::<u32>().map_err(|_| format!("--group {name}: no such group"))
}

/// Resolve `--user` and `--group` (None when neither is given). With
/// `--user` alone the group is the user's primary group.
pub fn resolve(user: Option<&str>, group: Option<&str>) -> Result<Option<Ids>, String> {
    let names = match (user, group) {
        (None, None) => return Ok(None),
        (Some(u), Some(g)) => format!("{u}:{g}"),
        (Some(u), None) => u.to_string(),
        (None, Some(g)) => format!(":{g}"),
    };
    let (uid, primary) = match user {
        Some(u) => {
            let (uid, gid) = lookup_user(u)?;
            (Some(uid), Some(gid))
        }
        None => (None, None),
    };
    let gid = match group {
        Some(g) => lookup_group(g)?,
        None => primary.unwrap_or_default(),
    };
    Ok(Some(Ids { uid, gid, names }))
}

fn check(rc: libc::c_int, what: &str) -> io::Result<()> {
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    Err(io::Error::new(e.kind(), format!("cannot drop privileges: {what}: {e}")))
}

/// Switch to `ids` for good (see the module doc for the order and checks).
pub fn drop_to(ids: &Ids) -> io::Result<()> {
    let gid = ids.gid as libc::gid_t;
    // SAFETY: getters without preconditions.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if euid != 0 && ids.uid.is_none_or(|u| u == euid && u == current_uid()) && egid == gid {
        // Started unprivileged as the user asked for (e.g. by a manager
        // that already switched): nothing to drop, nothing to regain.
        log::info!("already running as {} (uid {euid}, gid {gid})", ids.names);
        return Ok(());
    }
    // SAFETY: plain system calls with integer arguments, and setgroups with
    // a one-element array that outlives the call.
    unsafe {
        check(libc::setgroups(1, &gid), "setgroups")?;
        check(libc::setresgid(gid, gid, gid), "setresgid")?;
        if let Some(uid) = ids.uid {
            check(libc::setresuid(uid, uid, uid), "setresuid")?;
        }
    }
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: getresuid/getresgid write three ids into our variables.
    unsafe { check(libc::getresgid(&mut r, &mut e, &mut s), "getresgid")? };
    let wrong = |what: &str| {
        io::Error::new(io::ErrorKind::PermissionDenied, format!("privilege drop to {} failed: {what}", ids.names))
    };
    if [r, e, s] != [gid; 3] {
        return Err(wrong("group ids did not change"));
    }
    if let Some(uid) = ids.uid {
        unsafe { check(libc::getresuid(&mut r, &mut e, &mut s), "getresuid")? };
        if [r, e, s] != [uid; 3] {
            return Err(wrong("user ids did not change"));
        }
        // SAFETY: setuid(0) must fail now; if it succeeds we are root again.
        if uid != 0 && unsafe { libc::setuid(0) } == 0 {
            return Err(wrong("root could be regained"));
        }
    }
    log::info!("running as {} (uid {}, gid {gid})", ids.names, current_uid());
    Ok(())
}
