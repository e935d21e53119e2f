//! Security-type tests. VeNCrypt and Apple Remote Desktop as scripted byte
//! streams fed whole, byte by byte and at random splits; ARD answers
//! opened by a server side written with num-bigint (an independent modpow);
//! VeNCrypt X509 against an in-memory rustls server ([`Pair`]) with
//! certificates made by rcgen, at several chunkings.

use num_bigint::BigUint;

use super::tests::{after_init, cfg, connected, feed_every_way, feed_with, server_init, VECTOR_RESPONSE};
use super::*;
use crate::rfb::decode::testutil::xorshift;
use crate::rfb::encoding::RAW;
use crate::rfb::security::{ard, types, TlsTrust};

/// VECTOR_RESPONSE answers this challenge under the password "password".
const CHALLENGE: &[u8; 16] = b"0123456789abcdef";

fn be32(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

fn with_security(c: RfbConfig, user: Option<&[u8]>, tls: Option<TlsTrust>) -> RfbConfig {
    RfbConfig { security: SecurityConfig { username: user.map(<[u8]>::to_vec), tls }, ..c }
}

/// A trust that can never match (X509 sub-types become usable, TLS is
/// never reached in these byte-level tests).
fn some_trust() -> Option<TlsTrust> {
    Some(TlsTrust { server_name: "localhost".into(), ca_pem: None, fingerprint: Some([0; 32]) })
}

/// Server bytes up to the VeNCrypt sub-type list.
fn vencrypt_hello(subtypes: &[u32]) -> Vec<u8> {
    let mut v = b"RFB 003.008\n".to_vec();
    v.extend_from_slice(&[1, 19, 0, 2, 0, subtypes.len() as u8]);
    for t in subtypes {
        v.extend_from_slice(&be32(*t));
    }
    v
}

/// The client's bytes up to its sub-type choice.
fn vencrypt_reply(sub: u32) -> Vec<u8> {
    let mut v = b"RFB 003.008\n\x13\x00\x02".to_vec();
    v.extend_from_slice(&be32(sub));
    v
}

fn unsupported(o: &super::tests::Outcome, words: &[&str]) {
    match &o.result {
        Err(RfbError::Unsupported(m)) => {
            for w in words {
                assert!(m.contains(w), "{m:?} lacks {w:?}");
            }
        }
        other => panic!("expected Unsupported with {words:?}, got {other:?}"),
    }
}

// ------------------------------------------------------------ VeNCrypt bytes

#[test]
fn vencrypt_vncauth_and_none_subtypes() {
    // X509Vnc is unusable without a CA or pin: VncAuth inside VeNCrypt,
    // whose challenge follows the choice at once (no ack, no TLS).
    let mut input = vencrypt_hello(&[types::X509_VNC, types::VNC_AUTH]);
    input.extend_from_slice(CHALLENGE);
    input.extend_from_slice(&be32(0));
    input.extend(server_init(2, 2, "v"));
    let o = feed_every_way(cfg(&[RAW], Some(b"password")), &input);
    assert_eq!(o.result, Ok(()));
    let want = [vencrypt_reply(types::VNC_AUTH), VECTOR_RESPONSE.to_vec(), vec![1], after_init(&[RAW])].concat();
    assert_eq!(o.out, want);
    assert_eq!(o.events, [connected(2, 2, "v")]);

    // None: SecurityResult right after the choice; TLSNone is passed over.
    let mut input = vencrypt_hello(&[types::TLS_NONE, types::NONE]);
    input.extend_from_slice(&be32(0));
    input.extend(server_init(2, 2, "n"));
    let o = feed_every_way(cfg(&[RAW], None), &input);
    assert_eq!(o.result, Ok(()));
    assert_eq!(o.out, [vencrypt_reply(types::NONE), vec![1], after_init(&[RAW])].concat());

    // VeNCrypt's SecurityResult failure carries the reason as usual.
    let mut input = vencrypt_hello(&[types::VNC_AUTH]);
    input.extend_from_slice(CHALLENGE);
    input.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 3]);
    input.extend_from_slice(b"no!");
    let o = feed_every_way(cfg(&[RAW], Some(b"password")), &input);
    assert_eq!(o.result, Err(RfbError::AuthFailed("no!".into())));
}

#[test]
fn vencrypt_version_exchange() {
    // rfbproto: answer with the highest version we support up to the
    // server's: a 0.3 server gets 0.2.
    let mut input = b"RFB 003.008\n".to_vec();
    input.extend_from_slice(&[1, 19, 0, 3]);
    let o = feed_every_way(cfg(&[RAW], None), &input);
    assert_eq!(o.result, Ok(()));
    assert_eq!(o.out, b"RFB 003.008\n\x13\x00\x02");
    assert_eq!(o.left, 0);

    let run = |tail: &[u8]| {
        let mut input = b"RFB 003.008\n\x01\x13".to_vec();
        input.extend_from_slice(tail);
        feed_every_way(cfg(&[RAW], None), &input)
    };
    // 0.1 (legacy, U8 sub-types): refused before answering.
    let o = run(&[0, 1]);
    unsupported(&o, &["VeNCrypt 0.1", "0.2"]);
    assert_eq!(o.out, b"RFB 003.008\n\x13");
    // The server rejects our version.
    assert!(matches!(run(&[0, 2, 0xff]).result, Err(RfbError::Refused(m)) if m.contains("0.2")));
    // An empty sub-type list.
    assert!(matches!(run(&[0, 2, 0, 0]).result, Err(RfbError::Protocol(m)) if m.contains("empty")));
}

#[test]
fn vencrypt_refusals_name_what_to_configure() {
    let sent = b"RFB 003.008\n\x13\x00\x02".to_vec();
    // A server offering only TLSNone (TigerVNC's -SecurityTypes TLSNone).
    let o = feed_every_way(cfg(&[RAW], None), &vencrypt_hello(&[types::TLS_NONE]));
    unsupported(&o, &["anonymous TLS (TLSNone (257))", "rustls", "-X509Cert", "X509Vnc"]);
    assert_eq!(o.out, sent, "no sub-type is chosen");
    // Even with a CA configured: anonymous TLS has no certificate to check.
    let o = feed_every_way(
        with_security(cfg(&[RAW], None), None, some_trust()),
        &vencrypt_hello(&[types::TLS_NONE, types::TLS_VNC, types::TLS_PLAIN]),
    );
    unsupported(&o, &["TLSNone (257), TLSVnc (258), TLSPlain (259)"]);
    // X509 without a CA or pin.
    let o = feed_every_way(cfg(&[RAW], None), &vencrypt_hello(&[types::X509_VNC, types::X509_PLAIN]));
    if cfg!(feature = "tls") {
        unsupported(&o, &["X509Vnc (261), X509Plain (262)", "--vnc-ca", "vnc-fingerprint=sha256:"]);
    } else {
        unsupported(&o, &["without the `tls` feature"]);
    }
    // Plain without TLS would send the password in clear.
    let o = feed_every_way(cfg(&[RAW], Some(b"pw")), &vencrypt_hello(&[types::PLAIN]));
    unsupported(&o, &["Plain (256)", "unencrypted", "X509Plain"]);
    // Unknown sub-types are listed by number.
    let o = feed_every_way(cfg(&[RAW], None), &vencrypt_hello(&[300, 264]));
    unsupported(&o, &["300, 264"]);
}

#[test]
#[cfg(feature = "tls")]
fn vencrypt_subtype_ack_failure_sends_no_client_hello() {
    let mut input = vencrypt_hello(&[types::X509_VNC]);
    input.push(0);
    let o = feed_every_way(with_security(cfg(&[RAW], Some(b"pw")), None, some_trust()), &input);
    assert!(matches!(&o.result, Err(RfbError::Refused(m)) if m.contains("could not start TLS")), "{:?}", o.result);
    assert_eq!(o.out, vencrypt_reply(types::X509_VNC));
}

#[test]
fn closed_during_negotiations_says_where() {
    let check = |c: RfbConfig, input: &[u8], want: &str| {
        let mut client = RfbClient::new(c);
        client.handle_input(input, &mut Framebuffer::new(0, 0), &mut Vec::new()).unwrap();
        assert_eq!(client.closed_error(), RfbError::Closed(want.into()));
    };
    let hello = vencrypt_hello(&[types::VNC_AUTH]);
    check(cfg(&[RAW], None), &hello[..15], " during the VeNCrypt negotiation");
    check(cfg(&[RAW], None), b"RFB 003.008\n\x01\x1e\x00\x02", " during Apple Remote Desktop authentication");
    let srv = ArdServer::new(ard::tests::ffdhe_2048(), 3);
    check(
        cfg(&[RAW], None),
        &[b"RFB 003.008\n\x01\x1e".to_vec(), srv.hello()].concat(),
        " while credentials were awaited",
    );
}

// ------------------------------------------------------- Apple Remote Desktop

/// The server side of ARD, with num-bigint.
struct ArdServer {
    p: BigUint,
    x: BigUint,
    len: usize,
}

impl ArdServer {
    fn new(prime: Vec<u8>, seed: u32) -> ArdServer {
        let mut rnd = xorshift(seed);
        let x: Vec<u8> = (0..prime.len() - 1).map(|_| rnd() as u8).collect();
        ArdServer { p: BigUint::from_bytes_be(&prime), x: BigUint::from_bytes_be(&x), len: prime.len() }
    }

    fn pad(&self, v: &BigUint) -> Vec<u8> {
        let b = v.to_bytes_be();
        [vec![0; self.len - b.len()], b].concat()
    }

    /// U16 generator 2, U16 key-size, prime, public value.
    fn hello(&self) -> Vec<u8> {
        let y = BigUint::from(2u32).modpow(&self.x, &self.p);
        [vec![0, 2], (self.len as u16).to_be_bytes().to_vec(), self.pad(&self.p), self.pad(&y)].concat()
    }

    /// The client's answer (128 + key-size bytes) → (user name, password).
    fn open(&self, answer: &[u8]) -> (Vec<u8>, Vec<u8>) {
        use aes::cipher::generic_array::GenericArray;
        use aes::cipher::{BlockDecrypt, KeyInit};
        use md5::Digest;
        assert_eq!(answer.len(), 128 + self.len);
        let client_public = BigUint::from_bytes_be(&answer[128..]);
        let secret = self.pad(&client_public.modpow(&self.x, &self.p));
        let key = md5::Md5::digest(&secret);
        let aes = aes::Aes128::new(&key);
        let mut creds = answer[..128].to_vec();
        for block in creds.chunks_exact_mut(16) {
            aes.decrypt_block(GenericArray::from_mut_slice(block));
        }
        let field = |f: &[u8]| f[..f.iter().position(|&b| b == 0).expect("NUL-terminated")].to_vec();
        (field(&creds[..64]), field(&creds[64..]))
    }
}

fn chunkers() -> Vec<(String, Box<dyn FnMut() -> usize>)> {
    let mut v: Vec<(String, Box<dyn FnMut() -> usize>)> =
        vec![("whole".into(), Box::new(|| usize::MAX)), ("bytewise".into(), Box::new(|| 1))];
    for seed in 1..=4u32 {
        let mut rnd = xorshift(seed.wrapping_mul(2654435761));
        v.push((format!("random seed {seed}"), Box::new(move || (rnd() % 97) as usize + 1)));
    }
    v
}

#[test]
fn ard_end_to_end_at_every_split() {
    for (prime, bits) in [(ard::tests::ffdhe_2048(), 2048usize), (ard::tests::modp_4096(), 4096)] {
        let srv = ArdServer::new(prime, bits as u32);
        // macOS says 3.889; both ARD and VncAuth on offer, a user name
        // configured: ARD is taken.
        let mut input = b"RFB 003.889\n".to_vec();
        input.extend_from_slice(&[2, 30, 2]);
        input.extend(srv.hello());
        input.extend_from_slice(&be32(0));
        input.extend(server_init(4, 4, "mac"));
        let c = with_security(cfg(&[RAW], Some("hunter2 ünï".as_bytes())), Some(b"alice"), None);
        let runs: Vec<_> = if bits == 2048 { chunkers() } else { chunkers().into_iter().take(1).collect() };
        for (how, chunk) in runs {
            let o = feed_with(c.clone(), &input, chunk);
            assert_eq!(o.result, Ok(()), "{bits} bits, {how}");
            assert_eq!(o.events, [connected(4, 4, "mac")], "{how}");
            let head = b"RFB 003.008\n\x1e";
            assert!(o.out.starts_with(head), "{how}: {:?}", &o.out[..13]);
            let n = 128 + bits / 8;
            let answer = &o.out[head.len()..head.len() + n];
            assert_eq!(srv.open(answer), (b"alice".to_vec(), "hunter2 ünï".as_bytes().to_vec()), "{how}");
            assert_eq!(o.out[head.len() + n..], [vec![1], after_init(&[RAW])].concat(), "{how}");
        }
    }
}

#[test]
fn ard_asks_for_what_is_missing() {
    let srv = ArdServer::new(ard::tests::ffdhe_2048(), 9);
    let input = [b"RFB 003.008\n\x01\x1e".to_vec(), srv.hello()].concat();
    let rest = [be32(0).to_vec(), server_init(2, 2, "m")].concat();
    for (user, want) in [(None, true), (Some(&b"carol"[..]), false)] {
        let mut client = RfbClient::new(with_security(cfg(&[RAW], None), user, None));
        let (mut fb, mut out) = (Framebuffer::new(0, 0), Vec::new());
        assert_eq!(client.handle_input(&input, &mut fb, &mut out), Ok(input.len()));
        assert_eq!(client.poll_event(), Some(RfbEvent::CredentialsNeeded { username: want }));
        assert_eq!(out, b"RFB 003.008\n\x1e");
        out.clear();
        if want {
            client.set_credentials(b"carol", b"pw", &mut out).unwrap();
        } else {
            client.set_password(b"pw", &mut out).unwrap();
        }
        assert_eq!(srv.open(&out), (b"carol".to_vec(), b"pw".to_vec()));
        out.clear();
        assert_eq!(client.handle_input(&rest, &mut fb, &mut out), Ok(rest.len()));
        assert_eq!(client.poll_event(), Some(connected(2, 2, "m")));
    }
    // A wrong answer: the server's reason, or ours when it just closes.
    let mut client = RfbClient::new(with_security(cfg(&[RAW], Some(b"x")), Some(b"u"), None));
    client.handle_input(&input, &mut Framebuffer::new(0, 0), &mut Vec::new()).unwrap();
    assert_eq!(client.closed_error(), RfbError::AuthFailed("wrong user name or password".into()));
    let fail = [vec![0, 0, 0, 1, 0, 0, 0, 6], b"denied".to_vec()].concat();
    let r = client.handle_input(&fail, &mut Framebuffer::new(0, 0), &mut Vec::new());
    assert_eq!(r, Err(RfbError::AuthFailed("denied".into())));
}

#[test]
fn ard_bad_parameters_are_protocol_errors() {
    let p = ard::tests::ffdhe_2048();
    let mk = |g: u16, len: u16, keys: &[u8]| {
        let mut v = b"RFB 003.008\n\x01\x1e".to_vec();
        v.extend_from_slice(&g.to_be_bytes());
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(keys);
        feed_every_way(with_security(cfg(&[RAW], Some(b"p")), Some(b"u"), None), &v).result
    };
    let y5 = [vec![0; 255], vec![5]].concat();
    assert!(matches!(mk(2, 8, &[0; 16]), Err(RfbError::Protocol(m)) if m.contains("key size of 8")));
    assert!(matches!(mk(2, 600, &[]), Err(RfbError::Protocol(m)) if m.contains("key size of 600")));
    let mut even = p.clone();
    *even.last_mut().unwrap() ^= 1;
    assert!(matches!(mk(2, 256, &[even, y5.clone()].concat()), Err(RfbError::Protocol(m)) if m.contains("prime")));
    assert!(matches!(mk(1, 256, &[p.clone(), y5].concat()), Err(RfbError::Protocol(m)) if m.contains("generator")));
    let y1 = [vec![0; 255], vec![1]].concat();
    assert!(matches!(mk(2, 256, &[p, y1].concat()), Err(RfbError::Protocol(m)) if m.contains("public value")));
}

#[test]
fn security_types_with_tls_prefer_vencrypt() {
    // A CA or pin configured and VeNCrypt offered beside None: VeNCrypt is
    // chosen (with the `tls` feature); without one, None.
    let input = b"RFB 003.008\n\x02\x01\x13";
    let o = feed_every_way(with_security(cfg(&[RAW], None), None, some_trust()), input);
    assert_eq!(o.out, if cfg!(feature = "tls") { b"RFB 003.008\n\x13" } else { b"RFB 003.008\n\x01" });
    let o = feed_every_way(cfg(&[RAW], None), input);
    assert_eq!(o.out, b"RFB 003.008\n\x01");
}

// ------------------------------------------------------------ VeNCrypt + TLS

#[cfg(feature = "tls")]
mod x509 {
    use std::sync::Arc;

    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    use super::*;
    use crate::rfb::security::tls;

    /// The test PKI, and the server certificate's chain and fingerprint.
    struct Certs {
        ca_pem: String,
        other_ca_pem: String,
        chain: Vec<CertificateDer<'static>>,
        key_pem: String,
        fingerprint: [u8; 32],
    }

    fn certs() -> Certs {
        let pki = crate::rfb::security::test_pki::generate();
        Certs {
            fingerprint: tls::fingerprint(&pki.cert_der),
            chain: vec![CertificateDer::from(pki.cert_der)],
            ca_pem: pki.ca_pem,
            other_ca_pem: pki.other_ca_pem,
            key_pem: pki.key_pem,
        }
    }

    fn server_config(c: &Certs, versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<rustls::ServerConfig> {
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap();
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(c.chain.clone(), key)
            .unwrap();
        Arc::new(cfg)
    }

    fn trust(name: &str, ca: Option<&str>, pin: Option<[u8; 32]>) -> Option<TlsTrust> {
        Some(TlsTrust { server_name: name.into(), ca_pem: ca.map(|p| p.as_bytes().into()), fingerprint: pin })
    }

    /// RfbClient and a scripted VeNCrypt server in memory: the server's plain
    /// bytes, then TLS (rustls ServerConnection) after the client's first
    /// `tls_after` bytes. The client is fed in chunks like the gateway feeds it.
    struct Pair {
        client: RfbClient,
        fb: Framebuffer,
        to_client: Vec<u8>,
        /// How much of `to_client` the client has been offered so far.
        offered: usize,
        to_server: Vec<u8>,
        /// What the server received (plaintext), not yet taken by the script.
        received: Vec<u8>,
        plain_received: usize,
        tls_after: usize,
        server_cfg: Arc<rustls::ServerConfig>,
        tls: Option<rustls::ServerConnection>,
        server_error: Option<rustls::Error>,
        events: Vec<RfbEvent>,
        chunk: Box<dyn FnMut() -> usize>,
    }

    impl Pair {
        /// The server's bytes up to its TLS ack are queued; `start` runs them.
        fn new(
            c: RfbConfig,
            sub: u32,
            server_cfg: Arc<rustls::ServerConfig>,
            chunk: Box<dyn FnMut() -> usize>,
        ) -> Pair {
            Pair {
                client: RfbClient::new(c),
                fb: Framebuffer::new(0, 0),
                to_client: [vencrypt_hello(&[sub]), vec![1]].concat(),
                offered: 0,
                to_server: Vec::new(),
                received: Vec::new(),
                plain_received: 0,
                tls_after: vencrypt_reply(sub).len(),
                server_cfg,
                tls: None,
                server_error: None,
                events: Vec::new(),
                chunk,
            }
        }

        /// Run the handshake as far as it goes (through TLS, when it succeeds);
        /// checks the client's plain bytes.
        fn start(&mut self, sub: u32) -> Result<(), RfbError> {
            let r = self.pump();
            let n = self.tls_after.min(self.received.len());
            assert_eq!(self.received.drain(..n).as_slice(), vencrypt_reply(sub));
            r
        }

        /// Server → client (encrypted once TLS is on).
        fn send(&mut self, bytes: &[u8]) {
            use std::io::Write;
            match &mut self.tls {
                Some(s) => {
                    // rustls takes at most its 64 KiB buffer limit at a time.
                    let mut rest = bytes;
                    while !rest.is_empty() {
                        let n = s.writer().write(rest).unwrap();
                        while s.wants_write() {
                            s.write_tls(&mut self.to_client).unwrap();
                        }
                        rest = &rest[n..];
                    }
                }
                None => self.to_client.extend_from_slice(bytes),
            }
        }

        /// Move bytes both ways until nothing moves; the client's error, if any.
        fn pump(&mut self) -> Result<(), RfbError> {
            for _ in 0..1_000_000 {
                let mut moved = false;
                if !self.to_client.is_empty() {
                    let before = self.offered;
                    self.offered = self.offered.saturating_add((self.chunk)()).min(self.to_client.len());
                    let r =
                        self.client.handle_input(&self.to_client[..self.offered], &mut self.fb, &mut self.to_server);
                    let used = match r {
                        Ok(n) => n,
                        Err(e) => {
                            // Let the server read what the client sent last (an alert).
                            self.serve();
                            return Err(e);
                        }
                    };
                    self.to_client.drain(..used);
                    self.offered -= used;
                    moved |= used > 0 || self.offered > before;
                    while let Some(e) = self.client.poll_event() {
                        self.events.push(e);
                    }
                }
                moved |= self.serve();
                if !moved {
                    return Ok(());
                }
            }
            panic!("pump never settled");
        }

        /// The server reads what the client sent. True if anything moved.
        fn serve(&mut self) -> bool {
            use std::io::Read;
            let mut moved = false;
            while !self.to_server.is_empty() && self.server_error.is_none() {
                moved = true;
                let Some(s) = &mut self.tls else {
                    let n = (self.tls_after - self.plain_received).min(self.to_server.len());
                    self.received.extend(self.to_server.drain(..n));
                    self.plain_received += n;
                    if self.plain_received == self.tls_after {
                        self.tls = Some(rustls::ServerConnection::new(self.server_cfg.clone()).unwrap());
                    }
                    continue;
                };
                let n = s.read_tls(&mut &self.to_server[..]).unwrap();
                self.to_server.drain(..n);
                match s.process_new_packets() {
                    Ok(st) => {
                        let mut buf = vec![0; st.plaintext_bytes_to_read()];
                        s.reader().read_exact(&mut buf).unwrap();
                        self.received.extend_from_slice(&buf);
                    }
                    Err(e) => self.server_error = Some(e),
                }
            }
            if let Some(s) = &mut self.tls {
                while s.wants_write() {
                    s.write_tls(&mut self.to_client).unwrap();
                    moved = true;
                }
            }
            moved
        }

        /// The next `n` bytes the server received.
        fn take(&mut self, n: usize) -> Vec<u8> {
            self.pump().unwrap_or_else(|e| panic!("client failed while the server waited for {n} bytes: {e}"));
            assert!(self.received.len() >= n, "server got {:?}, wanted {n} bytes", self.received);
            self.received.drain(..n).collect()
        }

        fn handshaken(&self) -> bool {
            self.tls.as_ref().is_some_and(|s| !s.is_handshaking())
        }
    }

    /// The rest of a VeNCrypt X509 session after the TLS ack, checked step by
    /// step; then every client message through TLS, and a large ServerCutText.
    fn x509_session(p: &mut Pair, sub: u32, creds: Option<(&[u8], &[u8])>) {
        p.pump().unwrap();
        assert!(p.handshaken(), "TLS handshake did not complete: server error {:?}", p.server_error);
        match sub {
            types::X509_VNC => {
                p.send(CHALLENGE);
                assert_eq!(p.take(16), VECTOR_RESPONSE);
            }
            types::X509_PLAIN => {
                let (u, pw) = creds.unwrap();
                let mut want = [be32(u.len() as u32), be32(pw.len() as u32)].concat();
                want.extend_from_slice(u);
                want.extend_from_slice(pw);
                assert_eq!(p.take(want.len()), want);
            }
            _ => {}
        }
        p.send(&be32(0));
        assert_eq!(p.take(1), [1], "ClientInit");
        p.send(&server_init(8, 6, "tls desk"));
        assert_eq!(p.take(after_init(&[RAW]).len()), after_init(&[RAW]));
        assert!(p.events.contains(&connected(8, 6, "tls desk")), "{:?}", p.events);

        // Every sender goes through TLS: the server reads the plain messages.
        let mut want = Vec::new();
        wire::update_request(&mut want, false, Rect::new(0, 0, 8, 6));
        wire::key_event(&mut want, true, 0x61);
        wire::pointer_event(&mut want, 1, 3, 4);
        wire::client_cut_text(&mut want, "über", 99);
        let out = &mut p.to_server;
        p.client.request_update(false, &p.fb, out);
        p.client.key_event(true, 0x61, out);
        p.client.pointer_event(1, 3, 4, out);
        p.client.client_cut_text("über", out);
        assert_eq!(p.take(want.len()), want);

        // A raw update and a 70 KB ServerCutText: several records, several
        // rounds through the 32 KiB plaintext buffer.
        let mut upd = vec![0, 0, 0, 1];
        upd.extend_from_slice(&[0, 0, 0, 0, 0, 8, 0, 6, 0, 0, 0, 0]);
        upd.extend((0..48u32).flat_map(|i| [i as u8, 2 * i as u8, 3 * i as u8, 0]));
        p.send(&upd);
        let text: String = (0..70_000).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        let mut cut = vec![3, 0, 0, 0];
        cut.extend_from_slice(&be32(text.len() as u32));
        cut.extend_from_slice(text.as_bytes());
        p.send(&cut);
        p.pump().unwrap();
        assert!(p.events.contains(&RfbEvent::UpdateDone));
        assert_eq!(p.fb.data()[4 * 47..4 * 47 + 3], [47, 94, 141]);
        assert!(p.events.contains(&RfbEvent::ServerCutText(text)), "large cut text lost");
    }

    fn tls_cases() -> Vec<(&'static str, u32, Option<&'static [u8]>, bool)> {
        // (what, sub-type, user name configured, CA (else pin))
        vec![
            ("X509Vnc, CA", types::X509_VNC, None, true),
            ("X509None, pin", types::X509_NONE, None, false),
            ("X509Plain, CA", types::X509_PLAIN, Some(b"tess"), true),
            ("X509Plain, pin", types::X509_PLAIN, Some(b"tess"), false),
        ]
    }

    #[test]
    fn vencrypt_x509_sessions_at_every_chunking() {
        let c = certs();
        for versions in [&[&rustls::version::TLS13][..], &[&rustls::version::TLS12]] {
            let server = server_config(&c, versions);
            for (what, sub, user, ca) in tls_cases() {
                for (how, chunk) in chunkers() {
                    let t = if ca {
                        trust("localhost", Some(&c.ca_pem), None)
                    } else {
                        trust("x", None, Some(c.fingerprint))
                    };
                    let rc = with_security(cfg(&[RAW], Some(b"password")), user, t);
                    let mut p = Pair::new(rc, sub, server.clone(), chunk);
                    eprintln!("{what}, {:?}, {how}", versions[0].version);
                    p.start(sub).unwrap();
                    x509_session(&mut p, sub, user.map(|u| (u, &b"password"[..])));
                }
            }
        }
    }

    #[test]
    fn x509plain_asks_for_credentials_after_the_handshake() {
        let c = certs();
        let server = server_config(&c, &[&rustls::version::TLS13]);
        for user in [None, Some(&b"uma"[..])] {
            let rc = with_security(cfg(&[RAW], None), user, trust("127.0.0.1", Some(&c.ca_pem), None));
            let mut p = Pair::new(rc, types::X509_PLAIN, server.clone(), Box::new(|| usize::MAX));
            p.start(types::X509_PLAIN).unwrap();
            assert!(p.handshaken());
            assert_eq!(p.events, [RfbEvent::CredentialsNeeded { username: user.is_none() }]);
            assert!(p.received.is_empty(), "nothing may be sent before the credentials");
            let out = &mut p.to_server;
            match user {
                None => p.client.set_credentials(b"uma", b"pw", out).unwrap(),
                Some(_) => p.client.set_password(b"pw", out).unwrap(),
            }
            assert_eq!(p.take(13), b"\0\0\0\x03\0\0\0\x02umapw");
            // Refused: the server's reason.
            p.send(&[0, 0, 0, 1, 0, 0, 0, 4]);
            p.send(b"nope");
            assert_eq!(p.pump(), Err(RfbError::AuthFailed("nope".into())));
        }
    }

    #[test]
    fn untrusted_certificates_fail_before_any_credential() {
        let c = certs();
        let server = server_config(&c, &[&rustls::version::TLS13]);
        let fp: String = c.fingerprint.iter().map(|b| format!("{b:02x}")).collect();
        let cases = [
            ("another CA", trust("localhost", Some(&c.other_ca_pem), None), "UnknownIssuer"),
            ("wrong name", trust("vnc.example.org", Some(&c.ca_pem), None), "vnc.example.org"),
            ("wrong pin", trust("localhost", None, Some([7; 32])), "pinned with vnc-fingerprint="),
            ("right CA, wrong pin", trust("localhost", Some(&c.ca_pem), Some([7; 32])), "pinned with vnc-fingerprint="),
        ];
        for (what, t, words) in cases {
            for sub in [types::X509_VNC, types::X509_PLAIN] {
                let rc = with_security(cfg(&[RAW], Some(b"secret-pw")), Some(b"user"), t.clone());
                let mut p = Pair::new(rc, sub, server.clone(), Box::new(|| 7));
                match p.start(sub) {
                    Err(RfbError::Certificate(m)) => {
                        assert!(m.contains(words), "{what}: {m}");
                        assert!(m.contains(&format!("sha256:{fp}")), "{what}: the fingerprint is not named: {m}");
                    }
                    other => panic!("{what}: {other:?}"),
                }
                assert!(p.received.is_empty(), "{what}: the server received {:?}", p.received);
                // The client told the server why (a fatal alert).
                assert!(
                    matches!(p.server_error, Some(rustls::Error::AlertReceived(_))),
                    "{what}: server saw {:?}",
                    p.server_error
                );
                let e = p.client.handle_input(b"", &mut p.fb, &mut Vec::new()).unwrap_err();
                assert!(matches!(e, RfbError::Certificate(_)), "not sticky: {e:?}");
            }
        }
    }

    #[test]
    fn a_server_flooding_while_credentials_are_awaited_is_bounded() {
        let c = certs();
        let server = server_config(&c, &[&rustls::version::TLS13]);
        let rc = with_security(cfg(&[RAW], None), None, trust("localhost", Some(&c.ca_pem), None));
        let mut p = Pair::new(rc, types::X509_PLAIN, server, Box::new(|| usize::MAX));
        p.start(types::X509_PLAIN).unwrap();
        assert_eq!(p.events, [RfbEvent::CredentialsNeeded { username: true }]);
        p.send(&vec![0x55; 1 << 20]);
        p.pump().unwrap();
        let held = p.client.transport.buffered();
        assert!(held <= crate::rfb::transport::PLAIN_CAP, "{held} bytes of plaintext held");
        assert!(p.to_client.len() > (1 << 20) - 100_000, "only {} socket bytes left unread", p.to_client.len());
    }

    #[test]
    fn pem_checks() {
        let c = certs();
        assert_eq!(tls::parse_ca_pem(c.ca_pem.as_bytes()).unwrap().len(), 1);
        let two = format!("{}{}", c.ca_pem, c.other_ca_pem);
        assert_eq!(crate::rfb::security::check_ca_pem(two.as_bytes()), Ok(2));
        assert!(tls::parse_ca_pem(b"hello").unwrap_err().contains("no CERTIFICATE"));
        assert!(tls::parse_ca_pem(c.key_pem.as_bytes()).is_err(), "a key is not a CA");
        let broken = c.ca_pem.replace('M', "*");
        assert!(tls::parse_ca_pem(broken.as_bytes()).is_err());
    }
}
