//! The byte stream under the RFB state machine: plain TCP bytes, or — after
//! a VeNCrypt X509 sub-type has been agreed (rfbproto "VeNCrypt": "all
//! further traffic is send via this encrypted channel") — TLS records
//! through a rustls `ClientConnection`. Sans-IO like the rest of `rfb/`.
//!
//! ```text
//!  socket bytes ─▶ read_tls ─▶ rustls ─▶ plaintext (≤ PLAIN_CAP) ─▶ RFB state machine
//!  caller's out ◀─ write_tls ◀─ rustls ◀─ plaintext replies ◀────────────┘
//! ```
//!
//! Buffering contract, TLS mode (see `RfbClient::handle_input`):
//! * every socket byte rustls accepts counts as consumed; rustls holds at
//!   most one record (≤ 16 KiB + overhead), or one handshake flight of up
//!   to 64 KiB, before decrypting it;
//! * decrypted bytes wait in one buffer of at most [`PLAIN_CAP`] bytes
//!   until the state machine takes them; while it is full (a server
//!   sending while we wait for credentials) nothing more is read from the
//!   socket bytes, which then stay with the caller, whose own input cap
//!   ends the session;
//! * replies are encrypted into the caller's `out` in the same call
//!   (rustls's own outgoing buffer is emptied every time).

use crate::rfb::RfbError;

/// Decrypted bytes held for the RFB state machine, at most. The machine
/// leaves at most one fixed-size header (≤ 24 bytes) unconsumed unless it
/// waits for credentials, so this only bounds a misbehaving server.
#[cfg(feature = "tls")]
pub const PLAIN_CAP: usize = 32 * 1024;

/// Plain bytes, or TLS.
pub(crate) enum Transport {
    Plain,
    #[cfg(feature = "tls")]
    Tls(Box<tls::TlsStream>),
}

impl Transport {
    pub fn is_tls(&self) -> bool {
        !matches!(self, Transport::Plain)
    }

    /// Switch to TLS now: the ClientHello goes to `out`; from here on every
    /// socket byte is a TLS record.
    #[cfg(feature = "tls")]
    pub fn start_tls(&mut self, trust: &crate::rfb::security::TlsTrust, out: &mut Vec<u8>) -> Result<(), RfbError> {
        let t = tls::TlsStream::new(trust, out)?;
        *self = Transport::Tls(Box::new(t));
        Ok(())
    }

    /// Decrypted bytes waiting for the state machine.
    #[cfg(all(test, feature = "tls"))]
    pub fn buffered(&self) -> usize {
        match self {
            Transport::Plain => 0,
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.plain.len(),
        }
    }

    /// Append what `write` produces to `out`, encrypted when TLS is on.
    pub fn emit(&mut self, out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) -> Result<(), RfbError> {
        match self {
            Transport::Plain => {
                write(out);
                Ok(())
            }
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.emit(out, write),
        }
    }
}

#[cfg(feature = "tls")]
pub(crate) mod tls {
    use std::io::{ErrorKind, Read, Write};

    use rustls::ClientConnection;

    use super::PLAIN_CAP;
    use crate::rfb::security::{tls as sec, TlsTrust};
    use crate::rfb::RfbError;

    pub(crate) struct TlsStream {
        conn: ClientConnection,
        /// Decrypted, not yet taken by the state machine (≤ PLAIN_CAP).
        pub(super) plain: Vec<u8>,
        /// Decrypted bytes rustls still holds (not yet moved to `plain`).
        held: usize,
        /// Plaintext replies of one call, before encryption (reused).
        tx: Vec<u8>,
    }

    impl TlsStream {
        pub fn new(trust: &TlsTrust, out: &mut Vec<u8>) -> Result<TlsStream, RfbError> {
            let mut t = TlsStream { conn: sec::connect(trust)?, plain: Vec::new(), held: 0, tx: Vec::new() };
            t.flush(out)?;
            Ok(t)
        }

        pub fn established(&self) -> bool {
            !self.conn.is_handshaking()
        }

        /// Feed socket bytes; run `machine(plaintext, replies, established)
        /// -> plaintext bytes used` over what they decrypt to; encrypt its
        /// replies into `out`. Returns the socket bytes consumed.
        pub fn pump(
            &mut self,
            input: &[u8],
            out: &mut Vec<u8>,
            mut machine: impl FnMut(&[u8], &mut Vec<u8>, bool) -> Result<usize, RfbError>,
        ) -> Result<usize, RfbError> {
            let mut used = 0;
            let mut tx = std::mem::take(&mut self.tx);
            let result = loop {
                match self.round(&input[used..], &mut tx, &mut machine) {
                    Ok((fed, progress)) => {
                        used += fed;
                        let sealed = self.seal(&tx, out);
                        if let Err(e) = sealed {
                            break Err(e);
                        }
                        if fed == 0 && !progress {
                            break Ok(used);
                        }
                    }
                    Err(e) => {
                        // Tell the server why (rustls queued an alert).
                        let _ = self.flush(out);
                        break Err(e);
                    }
                }
            };
            tx.clear();
            self.tx = tx;
            result
        }

        /// One round: ciphertext in, plaintext to the machine. Returns the
        /// socket bytes taken and whether anything else moved.
        fn round(
            &mut self,
            input: &[u8],
            tx: &mut Vec<u8>,
            machine: &mut impl FnMut(&[u8], &mut Vec<u8>, bool) -> Result<usize, RfbError>,
        ) -> Result<(usize, bool), RfbError> {
            let mut fed = 0;
            // An empty read would tell rustls the stream has ended.
            if self.held == 0 && !input.is_empty() {
                fed = self.conn.read_tls(&mut &input[..]).map_err(|e| RfbError::Tls(e.to_string()))?;
            }
            let io = self.conn.process_new_packets().map_err(sec::error)?;
            let room = PLAIN_CAP - self.plain.len();
            let want = io.plaintext_bytes_to_read().min(room);
            let start = self.plain.len();
            self.plain.resize(start + want, 0);
            let got = match self.conn.reader().read(&mut self.plain[start..]) {
                Ok(n) => n,
                // Nothing decrypted yet, or the server sent close_notify and
                // will close the socket (the caller then sees EOF).
                Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
                Err(e) => return Err(RfbError::Tls(e.to_string())),
            };
            self.plain.truncate(start + got);
            self.held = io.plaintext_bytes_to_read() - got;
            tx.clear();
            let ate = machine(&self.plain, tx, self.established())?;
            self.plain.drain(..ate);
            Ok((fed, got > 0 || ate > 0))
        }

        /// Encrypt `write`'s output into `out`.
        pub fn emit(&mut self, out: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) -> Result<(), RfbError> {
            let mut tx = std::mem::take(&mut self.tx);
            tx.clear();
            write(&mut tx);
            let r = self.seal(&tx, out);
            tx.clear();
            self.tx = tx;
            r
        }

        /// Encrypt `plain` and append the records (and anything else rustls
        /// has queued) to `out`.
        fn seal(&mut self, mut plain: &[u8], out: &mut Vec<u8>) -> Result<(), RfbError> {
            while !plain.is_empty() {
                // rustls takes up to its 64 KiB buffer limit per call.
                let n = self.conn.writer().write(plain).map_err(|e| RfbError::Tls(e.to_string()))?;
                self.flush(out)?;
                if n == 0 {
                    return Err(RfbError::Tls("rustls accepted no plaintext".into()));
                }
                plain = &plain[n..];
            }
            self.flush(out)
        }

        fn flush(&mut self, out: &mut Vec<u8>) -> Result<(), RfbError> {
            while self.conn.wants_write() {
                self.conn.write_tls(out).map_err(|e| RfbError::Tls(e.to_string()))?;
            }
            Ok(())
        }
    }
}
