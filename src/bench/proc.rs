//! The servers under test: this binary started again as a child process,
//! so its CPU and memory are read apart from the load clients'
//! (`/proc/PID/stat` utime+stime, `/proc/PID/status` VmRSS).

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child `wsvnc ARGS...`, killed on drop.
pub struct Server {
    child: Child,
}

/// A free 127.0.0.1 port (bound and released; the race is accepted).
pub fn free_addr() -> io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

impl Server {
    /// Start `wsvnc` with `args` (its output discarded) and wait (at most 10 s) until `addr` accepts.
    pub fn start(args: &[&str], addr: SocketAddr) -> io::Result<Server> {
        let child = Command::new(std::env::current_exe()?)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()) // its log; an error shows as not listening, or in the numbers
            .spawn()?;
        let mut s = Server { child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline || s.child.try_wait()?.is_some() {
                return Err(io::Error::other(format!("wsvnc {} did not listen on {addr}", args.join(" "))));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(s)
    }

    /// CPU seconds used so far by all its threads: from schedstat (ns),
    /// else from stat (clock ticks, 10 ms: coarse for short windows).
    pub fn cpu(&self) -> f64 {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.child.id()));
        let ns: u64 = tasks
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
            .filter_map(|s| s.split(' ').next()?.parse::<u64>().ok())
            .sum();
        if ns > 0 {
            return ns as f64 / 1e9;
        }
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after "(comm) ": state is the first; utime, stime the 12th and 13th.
        let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
        let ticks: f64 = rest.split(' ').skip(11).take(2).filter_map(|v| v.parse::<f64>().ok()).sum();
        // SAFETY: sysconf has no preconditions.
        ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64
    }

    /// Resident set, KiB.
    pub fn rss_kib(&self) -> f64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Raise the open-file soft limit to the hard one (idle connections need
/// two descriptors each in the relay, and more here); returns the limit.
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 1024;
        }
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur as u64
    }
}
