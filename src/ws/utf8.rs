//! Incremental UTF-8 validation across fragment and read boundaries
//! (RFC 6455 §5.6, §8.1: text must be valid UTF-8; fail the connection with
//! 1007 as soon as it is not).
//!
//! Fail-fast: an error is reported as soon as the bytes seen so far cannot be
//! the prefix of any valid UTF-8 string (e.g. `F4 90`, `ED A0`, `E0 80`, `C0`),
//! not only when the sequence ends. `std::str::from_utf8` already has that
//! property: its `error_len() == None` means "valid prefix, truncated", so the
//! validator only keeps the up-to-3-byte incomplete tail between calls.

/// Incremental validator state: the incomplete trailing sequence, if any.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    pending: [u8; 4],
    npending: u8,
}

/// The bytes are not (the prefix of) valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget any pending partial sequence (start of a new message).
    pub fn reset(&mut self) {
        self.npending = 0;
    }

    /// Feed the next bytes of the text. Errors as soon as the text so far
    /// cannot be extended to valid UTF-8.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), InvalidUtf8> {
        if self.npending > 0 {
            // Complete the pending sequence one byte at a time (≤ 3 steps).
            while let Some((&b, rest)) = data.split_first() {
                let n = usize::from(self.npending);
                self.pending[n] = b;
                self.npending += 1;
                data = rest;
                match std::str::from_utf8(&self.pending[..n + 1]) {
                    Ok(_) => {
                        self.npending = 0;
                        break;
                    }
                    Err(e) if e.error_len().is_some() => return Err(InvalidUtf8),
                    Err(_) => {
                        if n + 1 >= 4 {
                            return Err(InvalidUtf8); // unreachable: 4 bytes always decide
                        }
                    }
                }
            }
            if self.npending > 0 {
                return Ok(());
            }
        }
        match std::str::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(InvalidUtf8),
            Err(e) => {
                let tail = &data[e.valid_up_to()..];
                // error_len() == None guarantees 1..=3 bytes of a valid prefix.
                if tail.len() > 3 {
                    return Err(InvalidUtf8);
                }
                self.pending[..tail.len()].copy_from_slice(tail);
                self.npending = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// True when the text fed so far ends on a character boundary.
    pub fn is_complete(&self) -> bool {
        self.npending == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_split(data: &[u8], cuts: &[usize]) -> Result<bool, InvalidUtf8> {
        let mut v = Utf8Validator::new();
        let mut last = 0;
        for &c in cuts {
            v.feed(&data[last..c])?;
            last = c;
        }
        v.feed(&data[last..])?;
        Ok(v.is_complete())
    }

    #[test]
    fn valid_text_at_every_split() {
        let s = "Hello-µ@ßöäüàá-UTF-8!! κόσμε 𝄞 \u{10ffff}".as_bytes();
        for i in 0..=s.len() {
            for j in i..=s.len() {
                assert_eq!(feed_split(s, &[i, j]), Ok(true), "cuts {i} {j}");
            }
        }
    }

    #[test]
    fn truncated_is_incomplete_not_invalid() {
        assert_eq!(feed_split(&[0xf0, 0x9d, 0x84], &[1]), Ok(false));
        assert_eq!(feed_split(&[0xce], &[]), Ok(false));
    }

    #[test]
    fn fails_fast_on_invalid_prefix() {
        // Each is rejected at its last byte, whatever follows.
        let cases: &[&[u8]] = &[
            &[0xf4, 0x90], // > U+10FFFF
            &[0xed, 0xa0], // surrogate
            &[0xe0, 0x80], // overlong 3-byte
            &[0xf0, 0x80], // overlong 4-byte
            &[0xc0],       // never valid
            &[0xff],
            &[0x80], // lone continuation
            &[0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xf4, 0x90],
        ];
        for c in cases {
            for cut in 0..c.len() {
                let mut v = Utf8Validator::new();
                let a = v.feed(&c[..cut]);
                assert_eq!(a, Ok(()), "{c:x?} prefix {cut}");
                assert_eq!(v.feed(&c[cut..]), Err(InvalidUtf8), "{c:x?} cut {cut}");
            }
        }
    }

    #[test]
    fn invalid_split_across_fragments() {
        // "κόσμε" + ED A0 80 (encoded surrogate) + "edited", split everywhere.
        let bad = [0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80, 0x65, 0x64];
        for i in 0..=bad.len() {
            assert_eq!(feed_split(&bad, &[i]), Err(InvalidUtf8), "cut {i}");
        }
    }
}
