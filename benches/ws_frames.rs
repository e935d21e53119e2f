//! WebSocket frame codec benchmarks (src/ws): parse + unmask through
//! `WsSession::read`, `apply_mask` against the naive byte loop, and frame
//! encoding. Run: `cargo bench --bench ws_frames -- --warm-up-time 1 --measurement-time 3`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wsvnc::ws::mask::{apply_mask, apply_mask_naive};
use wsvnc::ws::{frame, Delivery, Event, Limits, WsSession};

const SIZES: [(usize, &str); 3] = [(64, "64B"), (16 * 1024, "16KiB"), (1024 * 1024, "1MiB")];
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked client binary frame carrying `len` bytes.
fn client_frame(len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 14);
    frame::write_header(&mut v, true, false, frame::OP_BINARY, len);
    v[1] |= 0x80;
    v.extend_from_slice(&KEY);
    let start = v.len();
    v.extend((0..len).map(|i| (i * 31) as u8));
    apply_mask(&mut v[start..], KEY, 0);
    v
}

fn parse_unmask(c: &mut Criterion) {
    let mut g = c.benchmark_group("read_frame");
    for (len, name) in SIZES {
        let mut wire = client_frame(len);
        let mut session = WsSession::new(Limits { max_message: 2 << 20 }, Delivery::Whole, None);
        let mut out = Vec::new();
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                // Unmasking in place toggles the payload; the cost is the same
                // on every pass, so the same buffer is reused.
                let (n, ev) = session.read(black_box(&mut wire), &mut out).unwrap();
                match ev {
                    Some(Event::Binary(p)) => black_box(p.len()),
                    _ => unreachable!(),
                };
                n
            })
        });
    }
    g.finish();
}

fn mask(c: &mut Criterion) {
    let mut g = c.benchmark_group("mask");
    for (len, name) in SIZES {
        // Offset by one byte so the word loop also runs unaligned.
        let mut buf = vec![0x5au8; len + 1];
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(BenchmarkId::new("word", name), |b| b.iter(|| apply_mask(black_box(&mut buf[1..]), KEY, 1)));
        g.bench_function(BenchmarkId::new("naive", name), |b| {
            b.iter(|| apply_mask_naive(black_box(&mut buf[1..]), KEY, 1))
        });
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_frame");
    for (len, name) in SIZES {
        let data = vec![0xa5u8; len];
        let mut session = WsSession::new(Limits { max_message: 2 << 20 }, Delivery::Whole, None);
        let mut out = Vec::with_capacity(len + 14);
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                out.clear();
                session.send_binary(black_box(&data), &mut out);
                out.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, parse_unmask, mask, encode);
criterion_main!(benches);
