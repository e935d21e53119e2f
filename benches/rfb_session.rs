//! Whole-client decode throughput per encoding (Mpixel/s of output): the
//! built-in demo server (src/demo) encodes its 1024×768 animated desktop with
//! one encoding, the bytes are captured once, and each iteration feeds them
//! to a fresh `RfbClient` (handshake + one full FramebufferUpdate). A fresh
//! client per iteration because ZRLE/Zlib streams can't be replayed; the
//! handshake is ~100 bytes, noise next to a full frame. `memcpy` of the same
//! RGBA frame is the ceiling.
//!
//! Run: `cargo bench --bench rfb_session -- --warm-up-time 1 --measurement-time 3`.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wsvnc::demo::{DemoConfig, DemoServer};
use wsvnc::fb::Framebuffer;
use wsvnc::rfb::encoding;
use wsvnc::rfb::{RfbClient, RfbConfig, RfbEvent};

const W: u16 = 1024;
const H: u16 = 768;

/// Run a client against the demo until it has the whole (still) frame: the
/// demo caps one update at 1 MiB and sends the rest on the next incremental
/// requests, so keep asking until a request gets no answer. Returns every
/// byte the server sent (handshake included).
fn capture(enc: i32) -> Vec<u8> {
    let cfg = DemoConfig { width: W, height: H, ..DemoConfig::default() };
    let mut demo = DemoServer::new(&cfg, 0);
    let mut client = RfbClient::new(RfbConfig { encodings: vec![enc], ..RfbConfig::default() });
    let mut fb = Framebuffer::new(1, 1);
    let (mut to_client, mut to_server, mut stream) = (Vec::new(), Vec::new(), Vec::new());
    demo.start(&mut to_client);
    let (mut requests, mut quiet) = (0, 0);
    for _ in 0..100_000 {
        let n = client.handle_input(&to_client, &mut fb, &mut to_server).expect("client");
        stream.extend_from_slice(&to_client[..n]);
        to_client.drain(..n);
        let mut done = false;
        while let Some(ev) = client.poll_event() {
            done |= matches!(ev, RfbEvent::UpdateDone);
        }
        if client.is_normal() && (requests == 0 || done) {
            client.request_update(requests > 0, &fb, &mut to_server);
            requests += 1;
        }
        let used = demo.handle_input(&to_server, 0, &mut to_client).expect("demo");
        to_server.drain(..used);
        demo.poll(0, &mut to_client);
        if requests > 1 && to_client.is_empty() && to_server.is_empty() {
            quiet += 1;
            if quiet == 3 {
                let (_, _, px) = demo.framebuffer();
                assert_eq!(px.len(), W as usize * H as usize);
                return stream;
            }
        } else {
            quiet = 0;
        }
    }
    panic!("the demo never went quiet for encoding {enc}");
}

fn decode(stream: &[u8], enc: i32) -> Framebuffer {
    let mut client = RfbClient::new(RfbConfig { encodings: vec![enc], ..RfbConfig::default() });
    let mut fb = Framebuffer::new(1, 1);
    let mut out = Vec::new();
    let n = client.handle_input(black_box(stream), &mut fb, &mut out).expect("decode");
    assert_eq!(n, stream.len());
    fb
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("rfb_session");
    g.throughput(Throughput::Elements(W as u64 * H as u64));
    let src = vec![0x5au8; W as usize * H as usize * 4];
    let mut dst = vec![0u8; src.len()];
    g.bench_function("memcpy", |b| b.iter(|| dst.copy_from_slice(black_box(&src))));
    for (name, enc) in [
        ("raw", encoding::RAW),
        ("rre", encoding::RRE),
        ("hextile", encoding::HEXTILE),
        ("zrle", encoding::ZRLE),
        ("tight", encoding::TIGHT),
    ] {
        let stream = capture(enc);
        let fb = decode(&stream, enc);
        assert_eq!((fb.width(), fb.height()), (W, H));
        eprintln!("rfb_session/{name}: {} bytes for a {W}x{H} frame", stream.len());
        g.bench_function(BenchmarkId::from_parameter(name), |b| b.iter(|| decode(&stream, enc)));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
