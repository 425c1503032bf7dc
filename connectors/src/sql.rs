//! Quoting identifiers and literals for MySQL SQL that Lakewave generates
//! (pushed-down scans, statements sent to the backend, SHOW CREATE output,
//! bound parameters). One implementation, so every path escapes alike.

/// A backquoted identifier.
pub fn quote_ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// A string literal with the escapes MySQL understands by default.
pub fn quote_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for ch in s.chars() {
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

/// A hex literal (`X'00FF'`): binary data, whatever its bytes.
pub fn hex_literal(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2 + 3);
    out.push_str("X'");
    for b in bytes {
        out.push_str(&format!("{b:02X}"));
    }
    out.push('\'');
    out
}

/// A literal for bytes: a string literal when they are UTF-8 text, else a
/// hex literal.
pub fn quote_bytes(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => quote_str(text),
        Err(_) => hex_literal(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes() {
        assert_eq!(quote_ident("we`ird"), "`we``ird`");
        assert_eq!(quote_str("it's a\\b\n"), "'it''s a\\\\b\\n'");
        assert_eq!(quote_bytes(&[0, 1, 0xFF]), "X'0001FF'");
        assert_eq!(quote_bytes(b"ok"), "'ok'");
    }
}
