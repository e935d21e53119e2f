//! `wsvnc bench [--quick]`: the README's relay, gateway and memory tables
//! on this machine, in one command and well under a minute (`--quick`: a
//! few seconds). The servers are this binary started as child processes
//! (their CPU and memory read from /proc), the load clients threads of
//! this one, everything over real 127.0.0.1 sockets. Column meanings as in
//! benches/README.md, which stays the reference harness (it also runs
//! socat, websockify and noVNC beside wsvnc); here the relay's reference
//! is direct TCP to the same sink. Built with the `bench` feature (on by
//! default); `--no-default-features --features tls` leaves it out.

mod gateway;
mod proc;
mod relay;
mod ws;

use std::io;
use std::time::{Duration, Instant};

/// How much to measure.
pub struct Plan {
    reps: usize,
    bulk_mib: u64,
    echoes: usize,
    idle: usize,
    viewers: [usize; 2],
    warmup: Duration,
    window: Duration,
    demo_size: String,
}

impl Plan {
    pub fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                reps: 3,
                bulk_mib: 64,
                echoes: 300,
                idle: 500,
                viewers: [1, 4],
                warmup: Duration::from_millis(700),
                window: Duration::from_secs(2),
                demo_size: "1024x768".into(),
            }
        } else {
            Plan {
                reps: 5,
                bulk_mib: 256,
                echoes: 2000,
                idle: 1000,
                viewers: [1, 10],
                warmup: Duration::from_secs(2),
                window: Duration::from_secs(5),
                demo_size: "1920x1080".into(),
            }
        }
    }
}

/// One line of the relay table: `direct` (None: not applicable) and
/// `wsvnc`, printed with `decimals`, and wsvnc's ratio to direct.
pub struct Row {
    name: String,
    direct: Option<f64>,
    wsvnc: f64,
    decimals: usize,
}

impl Row {
    pub fn new(name: String, direct: Option<f64>, wsvnc: f64, decimals: usize) -> Row {
        Row { name, direct, wsvnc, decimals }
    }
}

/// Prints the relay table's rows as they are measured.
pub struct Table;

impl Table {
    pub fn row(&mut self, r: Row) {
        let d = r.decimals;
        let direct = r.direct.map_or("-".to_string(), |v| format!("{v:.d$}"));
        let ratio = r.direct.filter(|v| *v > 0.0).map_or(String::new(), |v| format!(" ({:.2})", r.wsvnc / v));
        println!("{:<28} {direct:>10} {:>16}", r.name, format!("{:.d$}{ratio}", r.wsvnc));
    }
}

pub fn median(v: &mut [f64]) -> f64 {
    percentile(v, 0.5)
}

/// The `q` quantile (nearest rank) of `v`; 0 when empty.
pub fn percentile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    // Insertion sort: a few dozen values, and smaller code than slice::sort.
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 && v[j - 1] > v[j] {
            v.swap(j - 1, j);
            j -= 1;
        }
    }
    v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Run everything and print the tables on standard output.
pub fn run(quick: bool) -> io::Result<()> {
    let started = Instant::now();
    let plan = Plan::new(quick);
    let fds = proc::raise_fd_limit();
    // SAFETY: sysconf has no preconditions.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split(' ').next().unwrap_or("?");
    let binary = std::env::current_exe().and_then(std::fs::metadata).map_or(0, |m| m.len());
    println!(
        "wsvnc {} bench{}: {cpus} CPUs, load {load}, open-file limit {fds}; medians of {} runs",
        env!("CARGO_PKG_VERSION"),
        if quick { " --quick" } else { "" },
        plan.reps
    );
    println!();
    println!("relay: ws://…/websockify → TCP sink; (x) = ratio to direct TCP to the sink");
    println!("{:<28} {:>10} {:>16}", "metric", "direct", "wsvnc");
    let mut t = Table;
    let idle_kib = relay::run(&plan, &mut t)?;

    println!();
    println!("gateway: demo desktop {} in its own process, v2 viewers acking every frame, deflate off", plan.demo_size);
    println!("viewers | fps/viewer | MB/s/viewer | gw CPU % | gw µs/frame | RSS MiB | VNC CPU %");
    let mut rss = 0.0;
    for n in plan.viewers {
        let r = gateway::run(&plan, n)?;
        println!(
            "{:>7} | {:>10.1} | {:>11.2} | {:>8.1} | {:>11.0} | {:>7.1} | {:>9.1}",
            r.viewers, r.fps, r.mb_per_s, r.gw_cpu_pct, r.gw_us_per_frame, r.rss_mib, r.vnc_cpu_pct
        );
        rss = r.rss_mib;
    }

    println!();
    println!("memory");
    println!("{:<40} {:>10.2}", "binary MiB", binary as f64 / (1 << 20) as f64);
    println!("{:<40} {:>10.1}", "idle gateway RSS MiB", gateway::idle_rss()? / 1024.0);
    println!("{:<40} {:>10.1}", "idle relayed WebSocket KiB", idle_kib);
    println!("{:<40} {:>10.1}", format!("gateway with {} viewers RSS MiB", plan.viewers[1]), rss);
    println!();
    println!(
        "took {:.0} s. Latency (pointer to pixel), deflate, and socat/websockify/noVNC side by side: benches/",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(percentile(&mut v, 0.5), 3.0);
        assert_eq!(percentile(&mut v, 0.99), 5.0);
        assert_eq!(percentile(&mut v, 0.0), 1.0);
        assert_eq!(percentile(&mut [], 0.5), 0.0);
        let mut many: Vec<f64> = (0..100).rev().map(f64::from).collect();
        assert_eq!(percentile(&mut many, 0.99), 98.0);
    }
}
