//! Peer-supplied text in log lines.
//!
//! A WebSocket Close reason, a VNC server's error text or desktop name, a
//! token name or a User-Agent comes from whoever is on the other end. Logged
//! raw, a `\n` in it forges a whole log line ("… refused\n2026-… admin
//! logged in"), an ESC sequence rewrites the operator's terminal, and a
//! bidirectional override (U+202E) makes a line read differently from what
//! it says. [`esc`] wraps such a string for `{}` formatting: control
//! characters (C0, DEL, C1), bidi controls and line/paragraph separators
//! are written as `\n`, `\t`, `\r` or `\u{…}`; a backslash is doubled, so an
//! escape in the output always came from us; and the text is cut after
//! [`MAX_CHARS`] characters (`…` and the number of bytes left out follow).
//!
//! ```
//! use wsvnc::logsafe::esc;
//! assert_eq!(esc("bye\nFAKE LINE").to_string(), r"bye\nFAKE LINE");
//! ```

use std::fmt::{self, Write as _};

/// Characters of a peer string written before it is cut.
pub const MAX_CHARS: usize = 200;

/// Display wrapper: see the module documentation.
#[derive(Clone, Copy)]
pub struct Esc<'a>(pub &'a str);

/// Wrap peer-supplied `s` for a log line.
pub fn esc(s: &str) -> Esc<'_> {
    Esc(s)
}

/// Lossy variant for bytes that may not be UTF-8 (invalid sequences become
/// U+FFFD, then escaped like any string).
pub fn esc_bytes(b: &[u8]) -> String {
    esc(&String::from_utf8_lossy(b)).to_string()
}

/// Characters that must not reach a log line as themselves.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200E}' | '\u{200F}'               // LRM, RLM
            | '\u{2028}' | '\u{2029}'             // line / paragraph separator
            | '\u{202A}'..='\u{202E}'             // embeddings and overrides
            | '\u{2066}'..='\u{2069}'             // isolates
            | '\u{FEFF}') // zero-width no-break space (BOM)
}

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, (i, c)) in self.0.char_indices().enumerate() {
            if n == MAX_CHARS {
                return write!(f, "…(+{} bytes)", self.0.len() - i);
            }
            match c {
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if needs_escape(c) => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows() {
        let rows: &[(&str, &str)] = &[
            ("plain text", "plain text"),
            ("", ""),
            ("a\nb", r"a\nb"),
            ("a\r\nb", r"a\r\nb"),
            ("tab\there", r"tab\there"),
            ("\x1b[2J", r"\u{1b}[2J"),
            ("nul\0", r"nul\u{0}"),
            ("del\x7f", r"del\u{7f}"),
            ("c1\u{85}", r"c1\u{85}"),
            ("\u{202e}txt.exe", r"\u{202e}txt.exe"),
            ("ls\u{2028}x", r"ls\u{2028}x"),
            ("back\\nslash", r"back\\nslash"),
            ("ünïcödé ✓ 日本", "ünïcödé ✓ 日本"),
        ];
        for (input, want) in rows {
            assert_eq!(esc(input).to_string(), *want, "input {input:?}");
        }
    }

    #[test]
    fn never_a_raw_control_character() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let out = Esc(&all[..]).to_string();
        assert!(!out.chars().any(needs_escape), "{out:?}");
    }

    #[test]
    fn long_text_is_cut_with_a_count() {
        let s = "é".repeat(300);
        let out = esc(&s).to_string();
        assert_eq!(out, format!("{}…(+200 bytes)", "é".repeat(MAX_CHARS)));
        assert_eq!(esc(&"x".repeat(MAX_CHARS)).to_string(), "x".repeat(MAX_CHARS));
        assert_eq!(esc_bytes(b"a\xffb\n"), "a\u{fffd}b\\n");
        assert_eq!(format!("{:?}", esc("q\n")), r#""q\n""#);
    }
}
