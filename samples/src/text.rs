//! Allocation-free text formatting shared by the CSV and JSON writers:
//! integers, one-decimal floats, timestamps and string quoting.

/// Appends the decimal form of `value`.
pub(crate) fn push_int(buf: &mut Vec<u8>, value: i64) {
    if value < 0 {
        buf.push(b'-');
    }
    push_uint(buf, value.unsigned_abs());
}

fn push_uint(buf: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[start..]);
}

/// Appends `value` with exactly one decimal (`300.0`, `-0.5`). The generator
/// only produces values already rounded to a tenth, so this is exact.
pub(crate) fn push_tenths(buf: &mut Vec<u8>, value: f64) {
    let tenths = (value * 10.0).round() as i64;
    if tenths < 0 {
        buf.push(b'-');
    }
    let abs = tenths.unsigned_abs();
    push_uint(buf, abs / 10);
    buf.push(b'.');
    buf.push(b'0' + (abs % 10) as u8);
}

/// Appends `true` or `false`.
pub(crate) fn push_bool(buf: &mut Vec<u8>, value: bool) {
    buf.extend_from_slice(if value { b"true" } else { b"false" });
}

fn push_padded(buf: &mut Vec<u8>, value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut v = value;
    for slot in digits[..width].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    buf.extend_from_slice(&digits[..width]);
}

/// Appends microseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS.ffffff`.
pub(crate) fn push_timestamp_us(buf: &mut Vec<u8>, micros: i64) {
    const DAY_US: i64 = 86_400_000_000;
    let days = micros.div_euclid(DAY_US);
    let tod = micros.rem_euclid(DAY_US) as u64;
    let (year, month, day) = civil_from_days(days);
    if year < 0 {
        buf.push(b'-');
    }
    push_padded(buf, year.unsigned_abs(), 4);
    buf.push(b'-');
    push_padded(buf, u64::from(month), 2);
    buf.push(b'-');
    push_padded(buf, u64::from(day), 2);
    buf.push(b' ');
    let secs = tod / 1_000_000;
    push_padded(buf, secs / 3600, 2);
    buf.push(b':');
    push_padded(buf, secs / 60 % 60, 2);
    buf.push(b':');
    push_padded(buf, secs % 60, 2);
    buf.push(b'.');
    push_padded(buf, tod % 1_000_000, 6);
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day),
/// counting in 400-year eras of 146 097 days.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468; // days since 0000-03-01
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Appends a CSV field, quoted per RFC 4180 when it contains a comma, a quote
/// or a line break (quotes inside are doubled).
pub(crate) fn push_csv_field(buf: &mut Vec<u8>, value: &str) {
    if value.contains([',', '"', '\n', '\r']) {
        buf.push(b'"');
        for byte in value.bytes() {
            if byte == b'"' {
                buf.push(b'"');
            }
            buf.push(byte);
        }
        buf.push(b'"');
    } else {
        buf.extend_from_slice(value.as_bytes());
    }
}

/// Appends a JSON string literal.
pub(crate) fn push_json_string(buf: &mut Vec<u8>, value: &str) {
    buf.push(b'"');
    for ch in value.chars() {
        match ch {
            '"' => buf.extend_from_slice(b"\\\""),
            '\\' => buf.extend_from_slice(b"\\\\"),
            '\n' => buf.extend_from_slice(b"\\n"),
            '\r' => buf.extend_from_slice(b"\\r"),
            '\t' => buf.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                buf.extend_from_slice(b"\\u00");
                let code = c as u8;
                const HEX: &[u8; 16] = b"0123456789abcdef";
                buf.push(HEX[usize::from(code >> 4)]);
                buf.push(HEX[usize::from(code & 0xf)]);
            }
            c => {
                let mut utf8 = [0u8; 4];
                buf.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
    buf.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut buf = Vec::new();
        f(&mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    #[test]
    fn numbers() {
        assert_eq!(render(|b| push_int(b, 0)), "0");
        assert_eq!(render(|b| push_int(b, -1234)), "-1234");
        assert_eq!(render(|b| push_int(b, i64::MIN)), i64::MIN.to_string());
        assert_eq!(render(|b| push_tenths(b, 300.0)), "300.0");
        assert_eq!(render(|b| push_tenths(b, 300.1)), "300.1");
        assert_eq!(render(|b| push_tenths(b, -0.5)), "-0.5");
        assert_eq!(render(|b| push_tenths(b, 0.3)), "0.3");
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            render(|b| push_timestamp_us(b, 0)),
            "1970-01-01 00:00:00.000000"
        );
        // 2026-01-01 00:00:00 UTC = 1767225600 s
        let base = 1_767_225_600_000_000;
        assert_eq!(
            render(|b| push_timestamp_us(b, base)),
            "2026-01-01 00:00:00.000000"
        );
        assert_eq!(
            render(|b| push_timestamp_us(b, base + 86_399_999_999)),
            "2026-01-01 23:59:59.999999"
        );
        // 2024-02-29 12:34:56.000789
        let leap = 1_709_210_096_000_789;
        assert_eq!(
            render(|b| push_timestamp_us(b, leap)),
            "2024-02-29 12:34:56.000789"
        );
        assert_eq!(
            render(|b| push_timestamp_us(b, -1)),
            "1969-12-31 23:59:59.999999"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(render(|b| push_csv_field(b, "plain")), "plain");
        assert_eq!(render(|b| push_csv_field(b, "a,b")), "\"a,b\"");
        assert_eq!(
            render(|b| push_csv_field(b, "say \"hi\"")),
            "\"say \"\"hi\"\"\""
        );
        assert_eq!(
            render(|b| push_json_string(b, "a\"b\\c\n\u{1}")),
            r#""a\"b\\c\n\u0001""#
        );
    }
}
