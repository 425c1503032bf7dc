//! Turning text fields into typed column values.
//!
//! Each column collects its values in a plain buffer (so a row found bad
//! half-way can be taken back) and becomes an Arrow array when a batch is
//! full. A value that does not fit its column is reported as a reason; the
//! reader decides whether that fails the query or becomes NULL.

use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int64Array, StringArray,
    Time64MicrosecondArray, TimestampMicrosecondArray, UInt64Array,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::DataType;

use super::datefmt::Format;

/// Character set of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    /// MySQL's `latin1`, which is Windows-1252.
    Latin1,
}

/// Windows-1252's characters for 0x80..=0x9F (ISO-8859-1 has controls there).
const CP1252_HIGH: [char; 32] = [
    '\u{20AC}', '\u{81}', '\u{201A}', '\u{192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}', '\u{2C6}', '\u{2030}',
    '\u{160}', '\u{2039}', '\u{152}', '\u{8D}', '\u{17D}', '\u{8F}', '\u{90}', '\u{2018}', '\u{2019}', '\u{201C}',
    '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}', '\u{2DC}', '\u{2122}', '\u{161}', '\u{203A}', '\u{153}', '\u{9D}',
    '\u{17E}', '\u{178}',
];

fn push_latin1(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        if b < 0x80 {
            out.push(b);
        } else {
            let c = if (0x80..0xA0).contains(&b) { CP1252_HIGH[(b - 0x80) as usize] } else { b as char };
            let mut tmp = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
        }
    }
}

/// Why a value was not accepted, with the MySQL error code that says so.
#[derive(Debug)]
pub struct Rejection {
    pub code: u16,
    pub reason: String,
}

/// ER_TRUNCATED_WRONG_VALUE_FOR_FIELD.
pub const ER_BAD_VALUE: u16 = 1366;
/// ER_INVALID_CHARACTER_STRING.
pub const ER_BAD_STRING: u16 = 1300;
/// ER_WARN_DATA_OUT_OF_RANGE.
pub const ER_OUT_OF_RANGE: u16 = 1264;

enum Values {
    Str { data: Vec<u8>, offsets: Vec<i32> },
    Int(Vec<i64>, i64, i64),
    UInt(Vec<u64>, u64),
    Float(Vec<f64>),
    Decimal(Vec<i128>, u8, i8),
    Bool(Vec<bool>),
    Date(Vec<i32>),
    Timestamp(Vec<i64>),
    Time(Vec<i64>),
}

/// The values of one column for the batch being built.
pub struct ColumnBuf {
    values: Values,
    valid: Vec<bool>,
    target: DataType,
    /// `date_format` / `time_format` / `timestamp_format` for this column.
    format: Option<Format>,
    encoding: Encoding,
}

/// MySQL's name for a column type, as errors show it.
pub fn type_word(t: &DataType) -> &'static str {
    match t {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => "integer",
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => "integer",
        DataType::Float16 | DataType::Float32 | DataType::Float64 => "double",
        DataType::Decimal128(..) => "decimal",
        DataType::Boolean => "boolean",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Timestamp(..) => "datetime",
        DataType::Time32(_) | DataType::Time64(_) => "time",
        _ => "string",
    }
}

fn int_range(t: &DataType) -> (i64, i64) {
    match t {
        DataType::Int8 => (i8::MIN as i64, i8::MAX as i64),
        DataType::Int16 => (i16::MIN as i64, i16::MAX as i64),
        DataType::Int32 => (i32::MIN as i64, i32::MAX as i64),
        _ => (i64::MIN, i64::MAX),
    }
}

fn uint_max(t: &DataType) -> u64 {
    match t {
        DataType::UInt8 => u8::MAX as u64,
        DataType::UInt16 => u16::MAX as u64,
        DataType::UInt32 => u32::MAX as u64,
        _ => u64::MAX,
    }
}

/// Whether the text reader can produce a column of this type.
pub fn supported(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(..)
            | DataType::Boolean
            | DataType::Date32
            | DataType::Timestamp(..)
            | DataType::Time64(_)
            | DataType::Time32(_)
    )
}

impl ColumnBuf {
    pub fn new(target: &DataType, format: Option<Format>, encoding: Encoding) -> ColumnBuf {
        let values = match target {
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                let (lo, hi) = int_range(target);
                Values::Int(Vec::new(), lo, hi)
            }
            DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => Values::UInt(Vec::new(), uint_max(target)),
            DataType::Float32 | DataType::Float64 => Values::Float(Vec::new()),
            DataType::Decimal128(p, s) => Values::Decimal(Vec::new(), *p, *s),
            DataType::Boolean => Values::Bool(Vec::new()),
            DataType::Date32 => Values::Date(Vec::new()),
            DataType::Timestamp(..) => Values::Timestamp(Vec::new()),
            DataType::Time64(_) | DataType::Time32(_) => Values::Time(Vec::new()),
            _ => Values::Str { data: Vec::new(), offsets: vec![0] },
        };
        ColumnBuf { values, valid: Vec::new(), target: target.clone(), format, encoding }
    }

    pub fn len(&self) -> usize {
        self.valid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.valid.is_empty()
    }

    pub fn is_text(&self) -> bool {
        matches!(self.values, Values::Str { .. })
    }

    pub fn push_null(&mut self) {
        self.valid.push(false);
        match &mut self.values {
            Values::Str { data, offsets } => offsets.push(data.len() as i32),
            Values::Int(v, ..) => v.push(0),
            Values::UInt(v, _) => v.push(0),
            Values::Float(v) => v.push(0.0),
            Values::Decimal(v, ..) => v.push(0),
            Values::Bool(v) => v.push(false),
            Values::Date(v) => v.push(0),
            Values::Timestamp(v) | Values::Time(v) => v.push(0),
        }
    }

    /// Takes back the values after the first `len`.
    pub fn truncate(&mut self, len: usize) {
        self.valid.truncate(len);
        match &mut self.values {
            Values::Str { data, offsets } => {
                offsets.truncate(len + 1);
                data.truncate(*offsets.last().unwrap_or(&0) as usize);
            }
            Values::Int(v, ..) => v.truncate(len),
            Values::UInt(v, _) => v.truncate(len),
            Values::Float(v) => v.truncate(len),
            Values::Decimal(v, ..) => v.truncate(len),
            Values::Bool(v) => v.truncate(len),
            Values::Date(v) => v.truncate(len),
            Values::Timestamp(v) | Values::Time(v) => v.truncate(len),
        }
    }

    /// Appends the value a field holds. On a rejection nothing is appended.
    /// `lossy` replaces invalid UTF-8 instead of rejecting it.
    pub fn push(&mut self, raw: &[u8], lossy: bool) -> Result<(), Rejection> {
        let word = type_word(&self.target);
        if let Values::Str { data, offsets } = &mut self.values {
            match self.encoding {
                Encoding::Latin1 => push_latin1(data, raw),
                Encoding::Utf8 => match std::str::from_utf8(raw) {
                    Ok(s) => data.extend_from_slice(s.as_bytes()),
                    Err(_) if lossy => data.extend_from_slice(String::from_utf8_lossy(raw).as_bytes()),
                    Err(e) => {
                        let at = e.valid_up_to();
                        let bad: String = raw[at..raw.len().min(at + 4)].iter().map(|b| format!("\\x{b:02X}")).collect();
                        return Err(Rejection {
                            code: ER_BAD_STRING,
                            reason: format!("Invalid utf8mb4 character string: '{bad}' at byte {}", at + 1),
                        });
                    }
                },
            }
            if data.len() > i32::MAX as usize {
                return Err(Rejection { code: ER_OUT_OF_RANGE, reason: "field too large for one batch (2 GiB)".into() });
            }
            offsets.push(data.len() as i32);
            self.valid.push(true);
            return Ok(());
        }
        let text = match std::str::from_utf8(raw) {
            Ok(t) => t.trim(),
            Err(_) => {
                return Err(Rejection { code: ER_BAD_VALUE, reason: format!("Incorrect {word} value: '{}'", shown(raw)) });
            }
        };
        let bad = || Rejection { code: ER_BAD_VALUE, reason: format!("Incorrect {word} value: '{}'", shown(text.as_bytes())) };
        let range = || Rejection { code: ER_OUT_OF_RANGE, reason: format!("Out of range {word} value: '{}'", shown(text.as_bytes())) };
        match &mut self.values {
            Values::Str { .. } => unreachable!(),
            Values::Int(v, lo, hi) => {
                let n: i64 = match text.parse() {
                    Ok(n) => n,
                    Err(e) if matches!(e.kind(), std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow) => return Err(range()),
                    Err(_) => return Err(bad()),
                };
                if n < *lo || n > *hi {
                    return Err(range());
                }
                v.push(n);
            }
            Values::UInt(v, max) => {
                let n: u64 = match text.strip_prefix('+').unwrap_or(text).parse() {
                    Ok(n) => n,
                    Err(e) if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) => return Err(range()),
                    Err(_) if text.starts_with('-') && text[1..].bytes().all(|b| b.is_ascii_digit()) => return Err(range()),
                    Err(_) => return Err(bad()),
                };
                if n > *max {
                    return Err(range());
                }
                v.push(n);
            }
            Values::Float(v) => v.push(text.parse().map_err(|_| bad())?),
            Values::Decimal(v, p, s) => v.push(parse_decimal(text, *p, *s).map_err(|overflow| if overflow { range() } else { bad() })?),
            Values::Bool(v) => v.push(match text.to_ascii_lowercase().as_str() {
                "1" | "true" | "t" | "yes" | "y" => true,
                "0" | "false" | "f" | "no" | "n" => false,
                _ => return Err(bad()),
            }),
            Values::Date(v) => {
                let date = match &self.format {
                    Some(f) => f.read(text).map(|d| d.date()),
                    None => NaiveDate::parse_from_str(text, "%Y-%m-%d").ok(),
                };
                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
                v.push(date.map(|d| (d - epoch).num_days() as i32).ok_or_else(bad)?);
            }
            Values::Timestamp(v) => {
                let ts = match &self.format {
                    Some(f) => f.read(text),
                    None => default_timestamp(text),
                };
                v.push(ts.map(|t| t.and_utc().timestamp_micros()).ok_or_else(bad)?);
            }
            Values::Time(v) => {
                let t = match &self.format {
                    Some(f) => f.read(text).map(|d| d.time()),
                    None => NaiveTime::parse_from_str(text, "%H:%M:%S%.f").ok(),
                };
                let midnight = NaiveTime::MIN;
                v.push(t.and_then(|t| (t - midnight).num_microseconds()).ok_or_else(bad)?);
            }
        }
        self.valid.push(true);
        Ok(())
    }

    /// The Arrow array of the values collected; the buffer starts empty again.
    pub fn finish(&mut self) -> datafusion::error::Result<ArrayRef> {
        use datafusion::arrow::compute::cast;
        let nulls = Some(NullBuffer::from(std::mem::take(&mut self.valid)));
        let array: ArrayRef = match &mut self.values {
            Values::Str { data, offsets } => {
                let offsets = OffsetBuffer::new(ScalarBuffer::from(std::mem::replace(offsets, vec![0])));
                let data = std::mem::take(data);
                // Every value was checked or converted to UTF-8 when pushed.
                Arc::new(StringArray::try_new(offsets, data.into(), nulls)?)
            }
            Values::Int(v, ..) => Arc::new(Int64Array::new(std::mem::take(v).into(), nulls)),
            Values::UInt(v, _) => Arc::new(UInt64Array::new(std::mem::take(v).into(), nulls)),
            Values::Float(v) => Arc::new(Float64Array::new(std::mem::take(v).into(), nulls)),
            Values::Decimal(v, p, s) => {
                Arc::new(Decimal128Array::new(std::mem::take(v).into(), nulls).with_precision_and_scale(*p, *s)?)
            }
            Values::Bool(v) => Arc::new(BooleanArray::new(std::mem::take(v).into(), nulls)),
            Values::Date(v) => Arc::new(Date32Array::new(std::mem::take(v).into(), nulls)),
            Values::Timestamp(v) => {
                let tz = match &self.target {
                    DataType::Timestamp(_, tz) => tz.clone(),
                    _ => None,
                };
                Arc::new(TimestampMicrosecondArray::new(std::mem::take(v).into(), nulls).with_timezone_opt(tz))
            }
            Values::Time(v) => Arc::new(Time64MicrosecondArray::new(std::mem::take(v).into(), nulls)),
        };
        if array.data_type() == &self.target {
            return Ok(array);
        }
        Ok(cast(&array, &self.target)?)
    }
}

/// A value as an error message shows it: at most 64 characters.
pub fn shown(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let mut out: String = s.chars().take(64).collect();
    if s.chars().count() > 64 {
        out.push_str("...");
    }
    out
}

/// `2024-01-02 03:04:05[.ffffff]`, with `T` for the space, an optional
/// `Z` or UTC offset (converted to UTC), or a date alone (midnight).
fn default_timestamp(text: &str) -> Option<NaiveDateTime> {
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, f) {
            return Some(t);
        }
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.naive_utc());
    }
    if let Ok(t) = chrono::DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z") {
        return Some(t.naive_utc());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().map(|d| d.and_time(NaiveTime::MIN))
}

/// The exact value of a fixed-point number at `scale`; digits past the
/// scale are rounded half away from zero. Err(true) when it needs more than
/// `precision` digits, Err(false) when it is not a number.
pub fn parse_decimal(text: &str, precision: u8, scale: i8) -> Result<i128, bool> {
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
    if (whole.is_empty() && fraction.is_empty())
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(false);
    }
    let scale = scale.max(0) as usize;
    let mut value: i128 = 0;
    let limit = 10i128.pow(precision as u32);
    let mut digits = whole.trim_start_matches('0').bytes().chain(fraction.bytes().chain(std::iter::repeat(b'0')).take(scale));
    for d in digits.by_ref() {
        value = value.checked_mul(10).and_then(|v| v.checked_add((d - b'0') as i128)).ok_or(true)?;
        if value >= limit {
            return Err(true);
        }
    }
    if fraction.len() > scale && fraction.as_bytes()[scale] >= b'5' {
        value += 1;
        if value >= limit {
            return Err(true);
        }
    }
    Ok(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(parse_decimal("0.07", 15, 2), Ok(7));
        assert_eq!(parse_decimal("-12.345", 15, 2), Ok(-1235));
        assert_eq!(parse_decimal("12", 4, 2), Ok(1200));
        assert_eq!(parse_decimal("123", 4, 2), Err(true));
        assert_eq!(parse_decimal("1e5", 10, 2), Err(false));
        assert_eq!(parse_decimal(".5", 3, 1), Ok(5));
    }

    #[test]
    fn values_and_rejections() {
        let mut c = ColumnBuf::new(&DataType::Int32, None, Encoding::Utf8);
        c.push(b" 42 ", false).unwrap();
        assert_eq!(c.push(b"3000000000", false).unwrap_err().code, ER_OUT_OF_RANGE);
        assert_eq!(c.push(b"x1", false).unwrap_err().code, ER_BAD_VALUE);
        c.push_null();
        let a = c.finish().unwrap();
        assert_eq!((a.len(), a.null_count(), a.data_type()), (2, 1, &DataType::Int32));

        let mut s = ColumnBuf::new(&DataType::Utf8, None, Encoding::Latin1);
        s.push(b"caf\xe9 \x80", false).unwrap();
        let a = s.finish().unwrap();
        let a = a.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(a.value(0), "café €");

        let mut u = ColumnBuf::new(&DataType::Utf8, None, Encoding::Utf8);
        assert_eq!(u.push(b"ok\xff", false).unwrap_err().code, ER_BAD_STRING);
        u.push(b"ok\xff", true).unwrap();
        u.push(b"x", false).unwrap();
        u.truncate(1);
        let a = u.finish().unwrap();
        assert_eq!(a.as_any().downcast_ref::<StringArray>().unwrap().value(0), "ok\u{FFFD}");
        assert_eq!(a.len(), 1);
    }
}
