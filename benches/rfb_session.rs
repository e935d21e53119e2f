//! Whole-client decode throughput per encoding (Mpixel/s of output): the
//! built-in demo server (src/demo) encodes its 1024×768 animated desktop with
//! one encoding, the bytes are captured once, and each iteration feeds them
//! to a fresh `RfbClient` (handshake + one full FramebufferUpdate). A fresh
//! client per iteration because ZRLE/Zlib streams can't be replayed; the
//! handshake is ~100 bytes, noise next to a full frame. `memcpy` of the same
//! RGBA frame is the ceiling.
//!
//! With the `tls` feature, group `rfb_tls`: the same frame (Raw, ZRLE) after
//! a VeNCrypt X509None handshake, so the client decrypts TLS records first
//! (the server's encryption happens outside the timed part), beside the
//! plain stream; the handshake itself (in memory, both sides); and the
//! client's Apple Remote Desktop answer per group size.
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

/// VeNCrypt X509None against an in-memory rustls server: the server's side
/// of the handshake, then whatever it sends, encrypted.
#[cfg(feature = "tls")]
mod tls {
    use std::io::{Read, Write};
    use std::sync::Arc;

    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use wsvnc::rfb::security::{tls, SecurityConfig, TlsTrust};

    use super::*;

    pub struct Setup {
        server: Arc<rustls::ServerConfig>,
        trust: TlsTrust,
    }

    impl Setup {
        pub fn new() -> Setup {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap().self_signed(&key).unwrap();
            #[allow(deprecated)]
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let server = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    vec![CertificateDer::from(cert.der().to_vec())],
                    PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
                )
                .unwrap();
            let trust = TlsTrust {
                server_name: "localhost".into(),
                ca_pem: None,
                fingerprint: Some(tls::fingerprint(cert.der())),
            };
            Setup { server: Arc::new(server), trust }
        }

        /// A client through the handshake (until its ClientInit), and the
        /// server's connection.
        pub fn connect(&self, enc: i32) -> (RfbClient, Framebuffer, rustls::ServerConnection) {
            let cfg = RfbConfig {
                encodings: vec![enc],
                security: SecurityConfig { username: None, tls: Some(self.trust.clone()) },
                ..RfbConfig::default()
            };
            let mut client = RfbClient::new(cfg);
            let mut fb = Framebuffer::new(1, 1);
            let mut server = rustls::ServerConnection::new(self.server.clone()).unwrap();
            let mut to_client = b"RFB 003.008\n\x01\x13\x00\x02\x00\x01\x00\x00\x01\x04\x01".to_vec();
            let mut to_server = Vec::new();
            let n = client.handle_input(&to_client, &mut fb, &mut to_server).unwrap();
            assert_eq!(n, to_client.len());
            to_client.clear();
            // Client's plain bytes: version, 19, VeNCrypt 0.2, sub-type 260.
            let hello = to_server.split_off(12 + 1 + 2 + 4);
            to_server = hello;
            let mut sent = false;
            for _ in 0..100 {
                let n = server.read_tls(&mut &to_server[..]).unwrap();
                to_server.drain(..n);
                server.process_new_packets().unwrap();
                if !server.is_handshaking() && !sent {
                    server.writer().write_all(&0u32.to_be_bytes()).unwrap(); // SecurityResult
                    sent = true;
                }
                while server.wants_write() {
                    server.write_tls(&mut to_client).unwrap();
                }
                let n = client.handle_input(&to_client, &mut fb, &mut to_server).unwrap();
                to_client.drain(..n);
                if sent && to_client.is_empty() && client.encrypted() {
                    // ClientInit arrives encrypted.
                    let n = server.read_tls(&mut &to_server[..]).unwrap();
                    to_server.drain(..n);
                    server.process_new_packets().unwrap();
                    let mut b = [0u8; 1];
                    server.reader().read_exact(&mut b).unwrap();
                    assert_eq!(b, [1]);
                    return (client, fb, server);
                }
            }
            panic!("no TLS handshake");
        }
    }

    /// The server's ServerInit and updates (`plain`, from the demo), encrypted.
    pub fn seal(server: &mut rustls::ServerConnection, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in plain.chunks(16 * 1024) {
            server.writer().write_all(chunk).unwrap();
            while server.wants_write() {
                server.write_tls(&mut out).unwrap();
            }
        }
        out
    }
}

#[cfg(feature = "tls")]
fn bench_tls(c: &mut Criterion) {
    use criterion::BatchSize;
    use wsvnc::rfb::security::ard::DhParams;
    let setup = tls::Setup::new();
    let mut g = c.benchmark_group("rfb_tls");
    g.throughput(Throughput::Elements(W as u64 * H as u64));
    for (name, enc) in [("raw", encoding::RAW), ("zrle", encoding::ZRLE)] {
        let stream = capture(enc);
        // The demo's handshake: version, [1, None], SecurityResult; then
        // ServerInit (24 bytes + name) and the updates.
        let after_security = 12 + 2 + 4;
        let plain = &stream[after_security..];
        g.bench_function(BenchmarkId::new("plain", name), |b| b.iter(|| decode(&stream, enc)));
        g.bench_function(BenchmarkId::new("tls", name), |b| {
            b.iter_batched(
                || {
                    let (client, fb, mut server) = setup.connect(enc);
                    let records = tls::seal(&mut server, plain);
                    (client, fb, records)
                },
                |(mut client, mut fb, records)| {
                    let mut out = Vec::new();
                    let n = client.handle_input(black_box(&records), &mut fb, &mut out).expect("decode");
                    assert_eq!(n, records.len());
                    fb
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();

    let mut g = c.benchmark_group("rfb_security");
    g.bench_function("vencrypt_x509none_handshake", |b| b.iter(|| setup.connect(encoding::RAW)));
    for (bits, prime) in [(1024, 128usize), (2048, 256), (4096, 512)] {
        // An odd modulus of the size (the cost does not depend on primality).
        let mut keys = vec![0xc5u8; 2 * prime];
        keys[prime - 1] |= 1;
        keys[prime] = 0x11;
        let params = DhParams::new(2, &keys).unwrap();
        g.bench_function(BenchmarkId::new("ard_answer", bits), |b| {
            b.iter(|| params.respond(b"user", b"password").unwrap())
        });
    }
    g.finish();
}

#[cfg(not(feature = "tls"))]
fn bench_tls(_: &mut Criterion) {}

criterion_group!(benches, bench, bench_tls);
criterion_main!(benches);
