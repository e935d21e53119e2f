//! Apple Remote Desktop authentication (RFB security type 30) against an
//! independent implementation: scripts/ard_vectors.py computes the client's
//! message with Python's pow(), hashlib.md5 and the `cryptography` package's
//! AES; wsvnc's `DhParams::respond_with` must produce the same bytes for the
//! same private key and padding. 120 cases: random odd moduli of 64 to 512
//! bytes (the arithmetic does not need primes; the named groups are in the
//! unit tests), private keys of 1 to 128 bytes, credentials of every length
//! around the 63-byte cut, UTF-8 and empty ones.

use std::io::Write;
use std::process::{Command, Stdio};

use wsvnc::rfb::security::ard::DhParams;

fn xorshift(mut s: u64) -> impl FnMut() -> u64 {
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One case: the JSON line for Python and the parameters for wsvnc.
struct Case {
    generator: u16,
    prime: Vec<u8>,
    public: Vec<u8>,
    private: Vec<u8>,
    pad: [u8; 128],
    user: Vec<u8>,
    pw: Vec<u8>,
}

fn cases() -> Vec<Case> {
    let mut r = xorshift(0x9E37_79B9_7F4A_7C15);
    let mut bytes = |n: usize| -> Vec<u8> { (0..n).map(|_| r() as u8).collect() };
    let mut out = Vec::new();
    for i in 0..120 {
        let len = [64, 65, 96, 127, 128, 200, 256, 384, 511, 512][i % 10];
        let mut prime = bytes(len);
        prime[0] |= 0x80;
        prime[len - 1] |= 1;
        // The server's public value: its first byte below p's keeps it
        // below p - 1; at least 2.
        let mut public = bytes(len);
        public[0] = public[0].min(prime[0].saturating_sub(1));
        public[len - 1] |= 2;
        // wsvnc's own keys are 64 bytes; full-length ones up to 128.
        let private = bytes([64, 1, 32, len.min(128)][i % 4]);
        let pad: [u8; 128] = bytes(128).try_into().unwrap();
        let name_len = [0, 1, 5, 62, 63, 64, 100][i % 7];
        let user = bytes(name_len).iter().map(|b| b'a' + b % 26).collect();
        let pw = match i % 3 {
            0 => "pässwörd ✓".as_bytes().to_vec(),
            1 => bytes(name_len).iter().map(|b| 1 + b % 254).collect(),
            _ => Vec::new(),
        };
        let generator = [2, 5, 3, 65535][i % 4];
        out.push(Case { generator, prime, public, private, pad, user, pw });
    }
    out
}

#[test]
fn ard_messages_match_python() {
    let python = "/usr/bin/python3";
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/ard_vectors.py");
    let check = Command::new(python).args(["-c", "import cryptography"]).output();
    match check {
        Ok(o) if o.status.success() => {}
        _ => panic!(
            "{python} with the `cryptography` module is needed: install the Debian packages python3 and \
             python3-cryptography (scripts/deps.sh apt)"
        ),
    }
    let cases = cases();
    let mut input = String::new();
    for c in &cases {
        input.push_str(&format!(
            "{{\"g\": {}, \"p\": \"{}\", \"y\": \"{}\", \"x\": \"{}\", \"pad\": \"{}\", \"user\": \"{}\", \"pw\": \"{}\"}}\n",
            c.generator,
            hex(&c.prime),
            hex(&c.public),
            hex(&c.private),
            hex(&c.pad),
            hex(&c.user),
            hex(&c.pw)
        ));
    }
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run scripts/ard_vectors.py");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "ard_vectors.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), cases.len(), "one answer per case");
    for (i, (c, want)) in cases.iter().zip(lines).enumerate() {
        let params = DhParams::new(c.generator, &[c.prime.clone(), c.public.clone()].concat())
            .unwrap_or_else(|e| panic!("case {i}: parameters refused: {e}"));
        let got = params.respond_with(&c.user, &c.pw, &c.private, &c.pad);
        assert_eq!(hex(&got), want, "case {i}: {} bytes, generator {}", c.prime.len(), c.generator);
    }
}
