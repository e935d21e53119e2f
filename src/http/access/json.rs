//! A strict JSON reader (RFC 8259) for JWT headers and claims: small
//! documents (a token is at most 4 KiB), read whole, refused on anything
//! doubtful. Stricter than the RFC where a token parser should be (RFC 8725
//! §3.x, RFC 7515 §5.2 on duplicate names): duplicate object keys, input
//! that is not UTF-8, nesting deeper than [`MAX_DEPTH`] and bytes after the
//! value are errors. Numbers are kept as f64 (NumericDate, ports).

/// Deepest nesting of arrays and objects accepted.
pub const MAX_DEPTH: usize = 8;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Value>),
    /// Members in document order; keys are unique.
    Object(Vec<(String, Value)>),
}

/// The member `key` of an object's members.
pub fn get<'a>(members: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    members.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Parses one JSON value filling all of `text` (whitespace around it allowed).
pub fn parse(text: &[u8]) -> Result<Value, &'static str> {
    let text = std::str::from_utf8(text).map_err(|_| "not UTF-8")?;
    let mut p = Parser { b: text.as_bytes(), i: 0 };
    let v = p.value(0)?;
    p.ws();
    if p.i != p.b.len() {
        return Err("trailing data after the JSON value");
    }
    Ok(v)
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Result<u8, &'static str> {
        self.b.get(self.i).copied().ok_or("unexpected end")
    }

    fn eat(&mut self, c: u8) -> Result<(), &'static str> {
        if self.peek()? != c {
            return Err("unexpected character");
        }
        self.i += 1;
        Ok(())
    }

    fn literal(&mut self, word: &'static [u8], v: Value) -> Result<Value, &'static str> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(v)
        } else if word.starts_with(&self.b[self.i..]) {
            Err("unexpected end")
        } else {
            Err("unexpected character")
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, &'static str> {
        self.ws();
        match self.peek()? {
            b'{' => {
                if depth == MAX_DEPTH {
                    return Err("nested too deeply");
                }
                self.i += 1;
                let mut members: Vec<(String, Value)> = Vec::new();
                self.ws();
                if self.peek()? == b'}' {
                    self.i += 1;
                    return Ok(Value::Object(members));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.ws();
                    self.eat(b':')?;
                    let v = self.value(depth + 1)?;
                    if get(&members, &key).is_some() {
                        return Err("duplicate key");
                    }
                    members.push((key, v));
                    self.ws();
                    match self.peek()? {
                        b',' => self.i += 1,
                        b'}' => {
                            self.i += 1;
                            return Ok(Value::Object(members));
                        }
                        _ => return Err("unexpected character"),
                    }
                }
            }
            b'[' => {
                if depth == MAX_DEPTH {
                    return Err("nested too deeply");
                }
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.peek()? == b']' {
                    self.i += 1;
                    return Ok(Value::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    match self.peek()? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Ok(Value::Array(items));
                        }
                        _ => return Err("unexpected character"),
                    }
                }
            }
            b'"' => Ok(Value::String(self.string()?)),
            b't' => self.literal(b"true", Value::Bool(true)),
            b'f' => self.literal(b"false", Value::Bool(false)),
            b'n' => self.literal(b"null", Value::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err("unexpected character"),
        }
    }

    /// RFC 8259 §6: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<Value, &'static str> {
        let start = self.i;
        let digits = |p: &mut Self| {
            let s = p.i;
            while matches!(p.b.get(p.i), Some(b'0'..=b'9')) {
                p.i += 1;
            }
            p.i - s
        };
        if self.b[self.i] == b'-' {
            self.i += 1;
        }
        match self.b.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err("bad number"),
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return Err("bad number");
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err("bad number");
            }
        }
        // The slice is ASCII by construction.
        let s = std::str::from_utf8(&self.b[start..self.i]).map_err(|_| "bad number")?;
        // RFC 8259 §6 lets a reader limit the range: beyond f64 is refused,
        // not read as infinity (found by fuzzing: `2e2222222`).
        match s.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(Value::Number(n)),
            Ok(_) => Err("number out of range"),
            Err(_) => Err("bad number"),
        }
    }

    /// A string at `self.i` (which must be '"'), escapes decoded (RFC 8259 §7).
    fn string(&mut self) -> Result<String, &'static str> {
        self.eat(b'"')?;
        let mut out = String::new();
        loop {
            let c = self.peek()?;
            self.i += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let e = self.peek()?;
                    self.i += 1;
                    out.push(match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return Err("bad escape"),
                    });
                }
                0x00..=0x1f => return Err("control character in a string"),
                _ => {
                    // Copy the whole UTF-8 sequence (input is valid UTF-8).
                    let start = self.i - 1;
                    while self.i < self.b.len() && (self.b[self.i] & 0xC0) == 0x80 {
                        self.i += 1;
                    }
                    out.push_str(std::str::from_utf8(&self.b[start..self.i]).map_err(|_| "not UTF-8")?);
                }
            }
        }
    }

    /// After `\u`: four hex digits, a surrogate pair as two escapes.
    fn unicode_escape(&mut self) -> Result<char, &'static str> {
        let hi = self.hex4()?;
        let code = match hi {
            0xD800..=0xDBFF => {
                if !self.b[self.i..].starts_with(b"\\u") {
                    return Err("lone surrogate");
                }
                self.i += 2;
                let lo = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&lo) {
                    return Err("lone surrogate");
                }
                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err("lone surrogate"),
            c => c,
        };
        char::from_u32(code).ok_or("bad escape")
    }

    fn hex4(&mut self) -> Result<u32, &'static str> {
        let h = self.b.get(self.i..self.i + 4).ok_or("unexpected end")?;
        let mut v = 0;
        for &c in h {
            v = v << 4 | (c as char).to_digit(16).ok_or("bad escape")?;
        }
        self.i += 4;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_rows() {
        let rows: Vec<(&str, Value)> = vec![
            ("{}", Value::Object(vec![])),
            (" [ ] ", Value::Array(vec![])),
            ("0", Value::Number(0.0)),
            ("-12.5e2", Value::Number(-1250.0)),
            ("1E+2", Value::Number(100.0)),
            ("true", Value::Bool(true)),
            ("null", Value::Null),
            (r#""a\"\\\/\b\f\n\r\t""#, Value::String("a\"\\/\u{8}\u{c}\n\r\t".into())),
            (r#""\u00e9\ud83d\ude00""#, Value::String("é😀".into())),
            ("\"日本\"", Value::String("日本".into())),
            (
                r#"{"a":[1,{"b":null}],"c":false}"#,
                Value::Object(vec![
                    (
                        "a".into(),
                        Value::Array(vec![Value::Number(1.0), Value::Object(vec![("b".into(), Value::Null)])]),
                    ),
                    ("c".into(), Value::Bool(false)),
                ]),
            ),
        ];
        for (text, want) in rows {
            assert_eq!(parse(text.as_bytes()), Ok(want), "{text}");
        }
    }

    #[test]
    fn refused_rows() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let rows: Vec<(&[u8], &str)> = vec![
            (b"", "unexpected end"),
            (b"{", "unexpected end"),
            (b"{\"a\":1,}", "unexpected character"),
            (b"[1,]", "unexpected character"),
            (b"{\"a\" 1}", "unexpected character"),
            (b"{\"a\":1,\"a\":2}", "duplicate key"),
            (b"01", "trailing data after the JSON value"),
            (b"1.", "bad number"),
            (b"-", "bad number"),
            (b".5", "unexpected character"),
            (b"1e", "bad number"),
            (b"tru", "unexpected end"),
            (b"trve", "unexpected character"),
            (b"\"a\nb\"", "control character in a string"),
            (b"\"\\x\"", "bad escape"),
            (b"\"\\ud800\"", "lone surrogate"),
            (b"\"\\udc00\"", "lone surrogate"),
            (b"\"\\u12\"", "unexpected end"),
            (b"\"\\u12zz\"", "bad escape"),
            (b"\"\xff\"", "not UTF-8"),
            (b"{} {}", "trailing data after the JSON value"),
            (b"NaN", "unexpected character"),
            (b"1e400", "number out of range"),
            (b"-2222211111.5e2222222209000000", "number out of range"),
            (deep.as_bytes(), "nested too deeply"),
        ];
        for (text, want) in rows {
            assert_eq!(parse(text), Err(want), "{}", String::from_utf8_lossy(text));
        }
        let ok_deep = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(ok_deep.as_bytes()).is_ok());
    }
}
