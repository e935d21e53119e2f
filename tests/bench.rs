#![cfg(feature = "bench")]
//! `wsvnc bench --quick` end to end: it runs (bounded), and prints the
//! relay, gateway and memory tables with every row and column present and
//! every measured number positive. (No timing is asserted: the numbers
//! are whatever this machine gives.)

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn run_quick() -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsvnc"))
        .args(["bench", "--quick"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wsvnc bench");
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("wsvnc bench --quick did not finish within 180 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.success(), "bench failed: {status}\n{out}\n{err}");
    out
}

/// The numbers in `s`, with a "(ratio)" counted as a number too.
fn numbers(s: &str) -> Vec<f64> {
    s.split([' ', '|', '(', ')']).filter_map(|w| w.parse::<f64>().ok()).collect()
}

#[test]
fn quick_bench_prints_the_three_tables() {
    let out = run_quick();
    let mut sections = out.split("\n\n");
    let head = sections.next().unwrap();
    assert!(head.starts_with("wsvnc ") && head.contains("bench --quick"), "{out}");

    let relay: Vec<&str> = sections.next().unwrap().lines().collect();
    assert!(relay[0].starts_with("relay:") && relay[1].starts_with("metric"), "{out}");
    let rows = &relay[2..];
    let names = [
        "bulk 1x64 MiB  MiB/s",
        "bulk 1x64 MiB  CPU-s/GB",
        "bulk 8x8 MiB  MiB/s",
        "bulk 8x8 MiB  CPU-s/GB",
        "echo 64 B p50 us",
        "echo 64 B p99 us",
        "echo 16 KiB p50 us",
        "echo 16 KiB p99 us",
        "idle RSS KiB/conn (500)",
    ];
    assert_eq!(rows.len(), names.len(), "{out}");
    for (row, name) in rows.iter().zip(names) {
        assert!(row.starts_with(name), "row {row:?} is not {name:?}");
        let values = numbers(&row[name.len()..]);
        let want = if row.contains(" - ") { 1 } else { 3 }; // wsvnc; or direct, wsvnc, ratio
        assert_eq!(values.len(), want, "{row:?}");
        assert!(values.iter().all(|v| *v > 0.0 && v.is_finite()), "{row:?}");
    }

    let gw: Vec<&str> = sections.next().unwrap().lines().collect();
    assert!(gw[0].starts_with("gateway:"), "{out}");
    assert_eq!(gw[1].split('|').count(), 7, "{}", gw[1]);
    assert_eq!(gw.len(), 4, "two configurations: {out}");
    for (row, viewers) in gw[2..].iter().zip([1.0, 4.0]) {
        let v = numbers(row);
        assert_eq!(v.len(), 7, "{row:?}");
        assert_eq!(v[0], viewers);
        // fps, MB/s, CPU %, µs/frame, RSS, VNC CPU %
        assert!(v[1..].iter().all(|x| *x > 0.0 && x.is_finite()), "{row:?}");
    }

    let mem: Vec<&str> = sections.next().unwrap().lines().collect();
    assert_eq!(mem[0], "memory");
    assert_eq!(mem.len(), 5, "{out}");
    for row in &mem[1..] {
        let v = numbers(row);
        assert!(!v.is_empty() && v.last().is_some_and(|x| *x > 0.0), "{row:?}");
    }
    assert!(out.trim_end().lines().last().unwrap().starts_with("took "), "{out}");
}

#[test]
fn bench_usage_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_wsvnc")).args(["bench", "--slow"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: wsvnc bench [--quick]"));
}
