//! Lexical helpers over SQL text that must not depend on a full parse:
//! splitting a multi-statement COM_QUERY, finding `?` placeholders, and
//! substituting prepared-statement parameters as properly quoted literals.
//! All of them skip quoted strings, quoted identifiers and comments.

use mysql_common::value::Value;

/// A lexical region of SQL text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Region {
    Code,
    Single,
    Double,
    Backtick,
    LineComment,
    BlockComment,
}

/// Walks `sql`, calling `on_code(byte_index, byte)` for bytes outside
/// strings and comments.
fn scan(sql: &str, mut on_code: impl FnMut(usize, u8)) {
    let b = sql.as_bytes();
    let mut region = Region::Code;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match region {
            Region::Code => match c {
                b'\'' => region = Region::Single,
                b'"' => region = Region::Double,
                b'`' => region = Region::Backtick,
                b'#' => region = Region::LineComment,
                b'-' if b.get(i + 1) == Some(&b'-')
                    && b.get(i + 2).is_none_or(|x| x.is_ascii_whitespace()) =>
                {
                    region = Region::LineComment
                }
                // `/*!...*/` and `/*+...*/` are executable/hint comments in
                // MySQL; they are skipped like plain comments here.
                b'/' if b.get(i + 1) == Some(&b'*') => {
                    region = Region::BlockComment;
                    i += 1;
                }
                _ => on_code(i, c),
            },
            Region::Single | Region::Double => {
                let quote = if region == Region::Single { b'\'' } else { b'"' };
                if c == b'\\' {
                    i += 1;
                } else if c == quote {
                    if b.get(i + 1) == Some(&quote) {
                        i += 1;
                    } else {
                        region = Region::Code;
                    }
                }
            }
            Region::Backtick => {
                if c == b'`' {
                    if b.get(i + 1) == Some(&b'`') {
                        i += 1;
                    } else {
                        region = Region::Code;
                    }
                }
            }
            Region::LineComment => {
                if c == b'\n' {
                    region = Region::Code;
                }
            }
            Region::BlockComment => {
                if c == b'*' && b.get(i + 1) == Some(&b'/') {
                    region = Region::Code;
                    i += 1;
                }
            }
        }
        i += 1;
    }
}

/// Splits on top-level `;`, dropping empty statements (only whitespace or
/// comments).
pub fn split_statements(sql: &str) -> Vec<&str> {
    let mut cuts = Vec::new();
    scan(sql, |i, c| {
        if c == b';' {
            cuts.push(i);
        }
    });
    let mut out = Vec::new();
    let mut start = 0;
    for cut in cuts.into_iter().chain(std::iter::once(sql.len())) {
        let piece = &sql[start..cut];
        if !is_blank(piece) {
            out.push(piece.trim());
        }
        start = (cut + 1).min(sql.len());
    }
    out
}

/// True when the text holds nothing but whitespace and comments.
pub fn is_blank(sql: &str) -> bool {
    let mut any = false;
    scan(sql, |_, c| {
        if !c.is_ascii_whitespace() {
            any = true;
        }
    });
    // Quoted strings are not code bytes, so check for them too.
    !any && !sql.contains(['\'', '"', '`'])
}

/// Byte positions of `?` placeholders.
pub fn placeholders(sql: &str) -> Vec<usize> {
    let mut out = Vec::new();
    scan(sql, |i, c| {
        if c == b'?' {
            out.push(i);
        }
    });
    out
}

/// Character set introducers MySQL allows before a string literal.
const INTRODUCERS: [&str; 5] = ["_binary", "_utf8mb4", "_utf8mb3", "_utf8", "_latin1"];

/// Turns the bytes of a COM_QUERY into SQL text. String literals whose value
/// is not UTF-8 (raw binary sent by clients that interpolate parameters), or
/// that carry a `_binary` introducer, become hex literals; other introducers
/// are dropped. Anything else that is not UTF-8 is replaced lossily.
pub fn decode_query(bytes: &[u8]) -> String {
    if std::str::from_utf8(bytes).is_ok() && !contains_introducer(bytes) {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len() + 16);
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\'' | b'"' => {
                let (value, end) = string_value(bytes, i);
                let raw = &bytes[i..end];
                let binary = strip_introducer(&mut out);
                if binary || std::str::from_utf8(&value).is_err() {
                    out.extend_from_slice(connectors::sql::hex_literal(&value).as_bytes());
                } else {
                    out.extend_from_slice(raw);
                }
                i = end;
            }
            b'`' => {
                let end = bytes[i + 1..].iter().position(|b| *b == b'`').map(|p| i + 2 + p).unwrap_or(bytes.len());
                out.extend_from_slice(&bytes[i..end]);
                i = end;
            }
            b'#' => {
                let end = bytes[i..].iter().position(|b| *b == b'\n').map(|p| i + p).unwrap_or(bytes.len());
                out.extend_from_slice(&bytes[i..end]);
                i = end;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = bytes[i + 2..].windows(2).position(|w| w == b"*/").map(|p| i + 4 + p).unwrap_or(bytes.len());
                out.extend_from_slice(&bytes[i..end]);
                i = end;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn contains_introducer(bytes: &[u8]) -> bool {
    let lower = bytes.to_ascii_lowercase();
    INTRODUCERS.iter().any(|i| lower.windows(i.len()).any(|w| w == i.as_bytes()))
}

/// Removes a trailing introducer (and spaces) from `out`; true for `_binary`.
fn strip_introducer(out: &mut Vec<u8>) -> bool {
    let trimmed = out.iter().rposition(|b| !b.is_ascii_whitespace()).map(|p| p + 1).unwrap_or(0);
    let word_start = out[..trimmed]
        .iter()
        .rposition(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
        .map(|p| p + 1)
        .unwrap_or(0);
    let word = out[word_start..trimmed].to_ascii_lowercase();
    match INTRODUCERS.iter().find(|i| i.as_bytes() == word.as_slice()) {
        Some(found) => {
            out.truncate(word_start);
            *found == "_binary"
        }
        None => false,
    }
}

/// The unescaped value of the string literal starting at `start` (a quote)
/// and the index just past its closing quote.
fn string_value(bytes: &[u8], start: usize) -> (Vec<u8>, usize) {
    let quote = bytes[start];
    let mut value = Vec::new();
    let mut i = start + 1;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\\' && i + 1 < bytes.len() {
            let n = bytes[i + 1];
            value.push(match n {
                b'0' => 0,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'b' => 8,
                b'Z' => 0x1A,
                other => other,
            });
            i += 2;
        } else if c == quote {
            if bytes.get(i + 1) == Some(&quote) {
                value.push(quote);
                i += 2;
            } else {
                return (value, i + 1);
            }
        } else {
            value.push(c);
            i += 1;
        }
    }
    (value, bytes.len())
}

/// The SQL literal for a bound parameter.
pub fn literal(v: &Value) -> String {
    match v {
        Value::NULL => "NULL".into(),
        Value::Bytes(b) => connectors::sql::quote_bytes(b),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => format!("{f:?}"),
        Value::Double(d) => format!("{d:?}"),
        Value::Date(y, m, d, 0, 0, 0, 0) => format!("DATE '{y:04}-{m:02}-{d:02}'"),
        Value::Date(y, m, d, h, mi, s, us) => {
            format!("TIMESTAMP '{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}'")
        }
        Value::Time(neg, days, h, m, s, us) => {
            let hours = u64::from(*days) * 24 + u64::from(*h);
            format!("'{}{hours:02}:{m:02}:{s:02}.{us:06}'", if *neg { "-" } else { "" })
        }
    }
}

/// Replaces each placeholder with its parameter's literal.
pub fn substitute(sql: &str, positions: &[usize], params: &[Value]) -> String {
    let mut out = String::with_capacity(sql.len() + params.len() * 8);
    let mut last = 0;
    for (pos, value) in positions.iter().zip(params) {
        out.push_str(&sql[last..*pos]);
        out.push_str(&literal(value));
        last = pos + 1;
    }
    out.push_str(&sql[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_outside_strings_and_comments() {
        let s = "select 'a;b'; select `x;y` from t -- c;\n; /* ; */ select 3;";
        let parts = split_statements(s);
        assert_eq!(parts, vec!["select 'a;b'", "select `x;y` from t -- c;", "/* ; */ select 3"]);
        assert!(split_statements(" ; -- only\n").is_empty());
    }

    #[test]
    fn placeholders_and_substitution() {
        let sql = "select ? , '?' , ? -- ?\n";
        let pos = placeholders(sql);
        assert_eq!(pos.len(), 2);
        let out = substitute(sql, &pos, &[Value::Int(5), Value::Bytes(b"it's".to_vec())]);
        assert_eq!(out, "select 5 , '?' , 'it''s' -- ?\n");
        assert_eq!(literal(&Value::Date(2026, 1, 2, 0, 0, 0, 0)), "DATE '2026-01-02'");
        assert_eq!(literal(&Value::Bytes(vec![0, 1, 0xFF])), "X'0001FF'");
    }

    #[test]
    fn binary_literals_in_query_text() {
        assert_eq!(decode_query(b"select 'a'"), "select 'a'");
        assert_eq!(decode_query(b"select * from t where b = '\\0\x01\xff'"), "select * from t where b = X'0001FF'");
        assert_eq!(decode_query(b"select _binary '\\0\x01\xff', _utf8mb4'x'"), "select X'0001FF', 'x'");
        assert_eq!(decode_query(b"select _binary'ab'"), "select X'6162'");
    }
}
