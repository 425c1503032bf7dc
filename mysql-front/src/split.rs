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

/// A MySQL string literal with the escapes MySQL understands by default.
pub fn quote_literal(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for ch in text.chars() {
        match ch {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x1a' => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The SQL literal for a bound parameter.
pub fn literal(v: &Value) -> String {
    match v {
        Value::NULL => "NULL".into(),
        Value::Bytes(b) => quote_literal(b),
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
        assert_eq!(parts, vec!["select 'a;b'", "select `x;y` from t -- c;", "select 3"]);
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
    }
}
