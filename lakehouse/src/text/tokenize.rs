//! Splitting delimited text into records and fields.
//!
//! One pass over the bytes of a file, which keeps the physical line of every
//! record (quoted or escaped newlines included) so errors can name it. The
//! dialect covers what exporters write:
//! - RFC 4180 quoting, a doubled quote standing for one;
//! - an escape character (MySQL `LOAD DATA`, Redshift `UNLOAD ... ESCAPE`)
//!   that takes the next byte literally wherever it appears, with MySQL's
//!   letter escapes (`\n`, `\t`, `\0`, ...) and `\N` for NULL;
//! - LF or CRLF line ends, or any single-byte record terminator.

/// How a field was written, which decides between NULL and the empty string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Plain,
    /// Enclosed in quotes: `""` is the empty string, never NULL.
    Quoted,
    /// Exactly the escape sequence for NULL (`\N`).
    EscapedNull,
}

#[derive(Debug, Clone)]
pub struct Dialect {
    pub delimiter: u8,
    pub quote: Option<u8>,
    pub escape: Option<u8>,
    /// None: LF, with a CR before it dropped.
    pub terminator: Option<u8>,
}

/// One record: the unescaped bytes of its fields, back to back.
#[derive(Debug, Default)]
pub struct Record {
    pub buf: Vec<u8>,
    ends: Vec<usize>,
    kinds: Vec<FieldKind>,
    /// Physical line (1-based) the record starts on.
    pub line: u64,
}

impl Record {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn field(&self, i: usize) -> (&[u8], FieldKind) {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        (&self.buf[start..self.ends[i]], self.kinds[i])
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
        self.kinds.clear();
    }

    fn end_field(&mut self, kind: FieldKind) {
        self.ends.push(self.buf.len());
        self.kinds.push(kind);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// A quoted field still open at the end of the file.
    UnterminatedQuote { line: u64 },
}

pub struct Tokenizer<'a> {
    data: &'a [u8],
    pos: usize,
    line: u64,
    dialect: Dialect,
}

impl<'a> Tokenizer<'a> {
    pub fn new(data: &'a [u8], dialect: Dialect) -> Self {
        Tokenizer { data, pos: 0, line: 1, dialect }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn is_terminator(&self, b: u8) -> bool {
        match self.dialect.terminator {
            Some(t) => b == t,
            None => b == b'\n',
        }
    }

    /// The byte an escape sequence stands for; None for `\N` (NULL).
    fn unescape(b: u8) -> Option<u8> {
        Some(match b {
            b'0' => 0,
            b'b' => 8,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'Z' => 26,
            b'N' => return None,
            other => other,
        })
    }

    /// Reads the next record into `rec`; false at the end of the data.
    /// Blank lines are skipped.
    pub fn next_record(&mut self, rec: &mut Record) -> Result<bool, TokenError> {
        loop {
            rec.clear();
            if self.pos >= self.data.len() {
                return Ok(false);
            }
            rec.line = self.line;
            let blank = self.read_record(rec)?;
            if !blank {
                return Ok(true);
            }
        }
    }

    /// Returns true when the record was a blank line.
    fn read_record(&mut self, rec: &mut Record) -> Result<bool, TokenError> {
        let d = self.dialect.clone();
        let data = self.data;
        loop {
            // One field.
            let field_start = rec.buf.len();
            let mut kind = FieldKind::Plain;
            let mut escaped_null = false;
            if let Some(q) = d.quote
                && self.pos < data.len()
                && data[self.pos] == q
            {
                kind = FieldKind::Quoted;
                let open_line = self.line;
                self.pos += 1;
                loop {
                    let Some(&b) = data.get(self.pos) else {
                        return Err(TokenError::UnterminatedQuote { line: open_line });
                    };
                    if Some(b) == d.escape && d.escape != Some(q) {
                        self.pos += 1;
                        if let Some(&c) = data.get(self.pos) {
                            if c == b'\n' {
                                self.line += 1;
                            }
                            rec.buf.push(Self::unescape(c).unwrap_or(c));
                            self.pos += 1;
                        }
                        continue;
                    }
                    if b == q {
                        if data.get(self.pos + 1) == Some(&q) {
                            rec.buf.push(q);
                            self.pos += 2;
                            continue;
                        }
                        self.pos += 1;
                        break;
                    }
                    if b == b'\n' {
                        self.line += 1;
                    }
                    rec.buf.push(b);
                    self.pos += 1;
                }
            }
            // The unquoted part (all of an unquoted field; after a closing
            // quote, anything up to the delimiter is kept as written).
            let unquoted = rec.buf.len();
            loop {
                let Some(&b) = data.get(self.pos) else {
                    Self::finish(rec, field_start, unquoted, kind, escaped_null, d.terminator.is_none());
                    return Ok(false);
                };
                if b == d.delimiter {
                    self.pos += 1;
                    Self::finish(rec, field_start, unquoted, kind, escaped_null, false);
                    break;
                }
                if self.is_terminator(b) {
                    self.pos += 1;
                    if b == b'\n' {
                        self.line += 1;
                    }
                    let rest = &rec.buf[field_start..];
                    let blank = rec.is_empty() && kind == FieldKind::Plain && !escaped_null
                        && (rest.is_empty() || (rest == b"\r" && d.terminator.is_none()));
                    Self::finish(rec, field_start, unquoted, kind, escaped_null, d.terminator.is_none());
                    return Ok(blank);
                }
                if Some(b) == d.escape {
                    self.pos += 1;
                    if let Some(&c) = data.get(self.pos) {
                        if c == b'\n' {
                            self.line += 1;
                        }
                        match Self::unescape(c) {
                            Some(u) => rec.buf.push(u),
                            None => escaped_null = rec.buf.len() == field_start,
                        }
                        self.pos += 1;
                    }
                    continue;
                }
                if b == b'\n' {
                    self.line += 1;
                }
                rec.buf.push(b);
                self.pos += 1;
            }
        }
    }

    fn finish(rec: &mut Record, field_start: usize, unquoted: usize, kind: FieldKind, escaped_null: bool, strip_cr: bool) {
        if strip_cr && rec.buf.len() > unquoted && rec.buf.last() == Some(&b'\r') {
            rec.buf.pop();
        }
        let kind = if escaped_null && rec.buf.len() == field_start { FieldKind::EscapedNull } else { kind };
        rec.end_field(kind);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str, dialect: Dialect) -> Vec<(u64, Vec<(String, FieldKind)>)> {
        let mut t = Tokenizer::new(text.as_bytes(), dialect);
        let mut rec = Record::default();
        let mut out = Vec::new();
        while t.next_record(&mut rec).unwrap() {
            let fields = (0..rec.len())
                .map(|i| {
                    let (b, k) = rec.field(i);
                    (String::from_utf8(b.to_vec()).unwrap(), k)
                })
                .collect();
            out.push((rec.line, fields));
        }
        out
    }

    fn csv() -> Dialect {
        Dialect { delimiter: b',', quote: Some(b'"'), escape: None, terminator: None }
    }

    #[test]
    fn quotes_crlf_and_lines() {
        let r = records("a,\"b,\"\"c\"\"\"\r\n\"multi\nline\",\"\"\n\nx,\n", csv());
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].1[1].0, "b,\"c\"");
        assert_eq!(r[0].1[0].0, "a");
        assert_eq!((r[1].0, r[1].1[0].0.as_str()), (2, "multi\nline"));
        assert_eq!(r[1].1[1], (String::new(), FieldKind::Quoted));
        assert_eq!(r[2].0, 5, "the blank line 4 is skipped");
        assert_eq!(r[2].1[1], (String::new(), FieldKind::Plain));
    }

    #[test]
    fn redshift_escapes() {
        let d = Dialect { delimiter: b'|', quote: None, escape: Some(b'\\'), terminator: None };
        let r = records("a\\|b|c\\\nd|\\N\n\\\\|\\t\n", d);
        assert_eq!(r[0].1[0].0, "a|b");
        assert_eq!(r[0].1[1].0, "c\nd");
        assert_eq!(r[0].1[2].1, FieldKind::EscapedNull);
        assert_eq!(r[1].0, 3);
        assert_eq!(r[1].1[0].0, "\\");
        assert_eq!(r[1].1[1].0, "\t");
    }

    #[test]
    fn unterminated_quote_names_its_line() {
        let mut t = Tokenizer::new(b"a\n\"open,\nmore", csv());
        let mut rec = Record::default();
        assert!(t.next_record(&mut rec).unwrap());
        assert_eq!(t.next_record(&mut rec), Err(TokenError::UnterminatedQuote { line: 2 }));
    }
}
