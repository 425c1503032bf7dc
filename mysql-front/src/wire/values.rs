//! Encoding Arrow values as MySQL row values, in the text protocol
//! (length-encoded strings) and the binary protocol (typed fixed-width or
//! length-prefixed values). Each batch column is prepared once into a typed
//! reader so rows are written without per-value downcasts or allocations.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal128Type, Decimal256Type, Decimal32Type, Decimal64Type,
    Field, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, Schema,
    Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type, i256,
};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use mysql_common::io::BufMutExt;

use lakehouse::types::{MyKind, MySqlType};

/// Writes the text form of row `i` of a decimal column.
type DecimalWriter<'a> = Box<dyn Fn(usize, &mut Vec<u8>) + 'a>;

/// One batch column, ready to encode.
pub enum ColumnReader<'a> {
    Bool(&'a BooleanArray),
    I64(Box<dyn Fn(usize) -> i64 + 'a>),
    U64(Box<dyn Fn(usize) -> u64 + 'a>),
    F32(Box<dyn Fn(usize) -> f32 + 'a>),
    F64(&'a datafusion::arrow::array::PrimitiveArray<Float64Type>),
    /// Decimal as (unscaled value as text digits with sign, scale).
    Decimal(DecimalWriter<'a>),
    Bytes(Box<dyn Fn(usize) -> &'a [u8] + 'a>),
    /// Days since 1970-01-01.
    Date(Box<dyn Fn(usize) -> i64 + 'a>),
    /// Microseconds since the epoch (UTC).
    Timestamp(Box<dyn Fn(usize) -> i64 + 'a>),
    /// Microseconds since midnight.
    Time(Box<dyn Fn(usize) -> i64 + 'a>),
    /// Values pre-rendered as text (JSON for nested types, display text
    /// for intervals and durations).
    Text(Vec<Option<String>>),
}

pub struct PreparedColumn<'a> {
    pub array: &'a dyn Array,
    pub reader: ColumnReader<'a>,
    pub ty: &'a MySqlType,
}

/// Casts columns whose encoding has no direct reader (dictionaries, run-end
/// encoded) to their value type. Returns the arrays to prepare.
pub fn normalise_batch(batch: &RecordBatch) -> Result<Vec<ArrayRef>, ArrowError> {
    batch
        .columns()
        .iter()
        .map(|a| match a.data_type() {
            DataType::Dictionary(_, v) => cast(a, v),
            DataType::RunEndEncoded(_, v) => cast(a, v.data_type()),
            _ => Ok(a.clone()),
        })
        .collect()
}

fn scale_to_micros(unit: &TimeUnit) -> (i64, i64) {
    // (multiply, divide)
    match unit {
        TimeUnit::Second => (1_000_000, 1),
        TimeUnit::Millisecond => (1000, 1),
        TimeUnit::Microsecond => (1, 1),
        TimeUnit::Nanosecond => (1, 1000),
    }
}

fn nested_json(array: &ArrayRef) -> Result<Vec<Option<String>>, ArrowError> {
    let schema = Arc::new(Schema::new(vec![Field::new("v", array.data_type().clone(), true)]));
    let batch = RecordBatch::try_new(schema, vec![array.clone()])?;
    let mut buf = Vec::new();
    {
        let mut writer = datafusion::arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, datafusion::arrow::json::writer::LineDelimited>(&mut buf);
        writer.write(&batch)?;
        writer.finish()?;
    }
    let text = String::from_utf8_lossy(&buf);
    let mut out = Vec::with_capacity(array.len());
    let mut lines = text.lines();
    for i in 0..array.len() {
        if array.is_null(i) {
            // Null rows still take a line (`{"v":null}`).
            lines.next();
            out.push(None);
            continue;
        }
        let line = lines.next().unwrap_or("{}");
        let v = line.strip_prefix("{\"v\":").and_then(|l| l.strip_suffix('}')).unwrap_or("null");
        out.push(Some(v.to_string()));
    }
    Ok(out)
}

fn display_text(array: &ArrayRef) -> Result<Vec<Option<String>>, ArrowError> {
    let f = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())?;
    Ok((0..array.len()).map(|i| (!array.is_null(i)).then(|| f.value(i).to_string())).collect())
}

fn decimal_digits(value: String, scale: i8, out: &mut Vec<u8>) {
    let (neg, digits) = match value.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, value.as_str()),
    };
    if neg {
        out.push(b'-');
    }
    if scale <= 0 {
        out.extend_from_slice(digits.as_bytes());
        out.extend(std::iter::repeat_n(b'0', (-scale) as usize));
        return;
    }
    let scale = scale as usize;
    if digits.len() <= scale {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', scale - digits.len()));
        out.extend_from_slice(digits.as_bytes());
    } else {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.extend_from_slice(int.as_bytes());
        out.push(b'.');
        out.extend_from_slice(frac.as_bytes());
    }
}

/// Prepares one column for encoding.
pub fn prepare<'a>(array: &'a ArrayRef, ty: &'a MySqlType) -> Result<PreparedColumn<'a>, ArrowError> {
    use DataType as D;
    let a = array.as_ref();
    let reader = match a.data_type() {
        D::Boolean => ColumnReader::Bool(a.as_boolean()),
        D::Int8 => { let x = a.as_primitive::<Int8Type>(); ColumnReader::I64(Box::new(move |i| x.value(i).into())) }
        D::Int16 => { let x = a.as_primitive::<Int16Type>(); ColumnReader::I64(Box::new(move |i| x.value(i).into())) }
        D::Int32 => { let x = a.as_primitive::<Int32Type>(); ColumnReader::I64(Box::new(move |i| x.value(i).into())) }
        D::Int64 => { let x = a.as_primitive::<Int64Type>(); ColumnReader::I64(Box::new(move |i| x.value(i))) }
        D::UInt8 => { let x = a.as_primitive::<UInt8Type>(); ColumnReader::U64(Box::new(move |i| x.value(i).into())) }
        D::UInt16 => { let x = a.as_primitive::<UInt16Type>(); ColumnReader::U64(Box::new(move |i| x.value(i).into())) }
        D::UInt32 => { let x = a.as_primitive::<UInt32Type>(); ColumnReader::U64(Box::new(move |i| x.value(i).into())) }
        D::UInt64 => { let x = a.as_primitive::<UInt64Type>(); ColumnReader::U64(Box::new(move |i| x.value(i))) }
        D::Float16 => { let x = a.as_primitive::<Float16Type>(); ColumnReader::F32(Box::new(move |i| x.value(i).to_f32())) }
        D::Float32 => { let x = a.as_primitive::<Float32Type>(); ColumnReader::F32(Box::new(move |i| x.value(i))) }
        D::Float64 => ColumnReader::F64(a.as_primitive::<Float64Type>()),
        D::Decimal32(_, s) => { let (x, s) = (a.as_primitive::<Decimal32Type>(), *s); ColumnReader::Decimal(Box::new(move |i, out| decimal_digits(x.value(i).to_string(), s, out))) }
        D::Decimal64(_, s) => { let (x, s) = (a.as_primitive::<Decimal64Type>(), *s); ColumnReader::Decimal(Box::new(move |i, out| decimal_digits(x.value(i).to_string(), s, out))) }
        D::Decimal128(_, s) => { let (x, s) = (a.as_primitive::<Decimal128Type>(), *s); ColumnReader::Decimal(Box::new(move |i, out| decimal_digits(x.value(i).to_string(), s, out))) }
        D::Decimal256(_, s) => { let (x, s) = (a.as_primitive::<Decimal256Type>(), *s); ColumnReader::Decimal(Box::new(move |i, out| decimal_digits(i256::to_string(&x.value(i)), s, out))) }
        D::Utf8 => { let x = a.as_string::<i32>(); ColumnReader::Bytes(Box::new(move |i| x.value(i).as_bytes())) }
        D::LargeUtf8 => { let x = a.as_string::<i64>(); ColumnReader::Bytes(Box::new(move |i| x.value(i).as_bytes())) }
        D::Utf8View => { let x = a.as_string_view(); ColumnReader::Bytes(Box::new(move |i| x.value(i).as_bytes())) }
        D::Binary => { let x = a.as_binary::<i32>(); ColumnReader::Bytes(Box::new(move |i| x.value(i))) }
        D::LargeBinary => { let x = a.as_binary::<i64>(); ColumnReader::Bytes(Box::new(move |i| x.value(i))) }
        D::BinaryView => { let x = a.as_binary_view(); ColumnReader::Bytes(Box::new(move |i| x.value(i))) }
        D::FixedSizeBinary(_) => { let x = a.as_fixed_size_binary(); ColumnReader::Bytes(Box::new(move |i| x.value(i))) }
        D::Date32 => { let x = a.as_primitive::<Date32Type>(); ColumnReader::Date(Box::new(move |i| x.value(i).into())) }
        D::Date64 => { let x = a.as_primitive::<Date64Type>(); ColumnReader::Date(Box::new(move |i| x.value(i).div_euclid(86_400_000))) }
        D::Timestamp(unit, _) => {
            let (mul, div) = scale_to_micros(unit);
            let get: Box<dyn Fn(usize) -> i64 + 'a> = match unit {
                TimeUnit::Second => { let x = a.as_primitive::<TimestampSecondType>(); Box::new(move |i| x.value(i)) }
                TimeUnit::Millisecond => { let x = a.as_primitive::<TimestampMillisecondType>(); Box::new(move |i| x.value(i)) }
                TimeUnit::Microsecond => { let x = a.as_primitive::<TimestampMicrosecondType>(); Box::new(move |i| x.value(i)) }
                TimeUnit::Nanosecond => { let x = a.as_primitive::<TimestampNanosecondType>(); Box::new(move |i| x.value(i)) }
            };
            ColumnReader::Timestamp(Box::new(move |i| get(i).saturating_mul(mul).div_euclid(div)))
        }
        D::Time32(TimeUnit::Second) => { let x = a.as_primitive::<Time32SecondType>(); ColumnReader::Time(Box::new(move |i| i64::from(x.value(i)) * 1_000_000)) }
        D::Time32(_) => { let x = a.as_primitive::<Time32MillisecondType>(); ColumnReader::Time(Box::new(move |i| i64::from(x.value(i)) * 1000)) }
        D::Time64(TimeUnit::Nanosecond) => { let x = a.as_primitive::<Time64NanosecondType>(); ColumnReader::Time(Box::new(move |i| x.value(i) / 1000)) }
        D::Time64(_) => { let x = a.as_primitive::<Time64MicrosecondType>(); ColumnReader::Time(Box::new(move |i| x.value(i))) }
        D::Null => ColumnReader::Text(vec![None; a.len()]),
        D::List(_) | D::LargeList(_) | D::FixedSizeList(_, _) | D::Struct(_) | D::Map(_, _)
        | D::ListView(_) | D::LargeListView(_) | D::Union(_, _) => ColumnReader::Text(nested_json(array)?),
        _ => ColumnReader::Text(display_text(array)?),
    };
    Ok(PreparedColumn { array: a, reader, ty })
}

fn push_2(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10 % 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

/// Civil date from days since 1970-01-01 (proleptic Gregorian).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn push_date(out: &mut Vec<u8>, days: i64) {
    let (y, m, d) = civil(days);
    let mut b = itoa::Buffer::new();
    let ys = b.format(y);
    for _ in ys.len()..4 {
        out.push(b'0');
    }
    out.extend_from_slice(ys.as_bytes());
    out.push(b'-');
    push_2(out, m);
    out.push(b'-');
    push_2(out, d);
}

fn push_fraction(out: &mut Vec<u8>, micros: u32, fsp: u8) {
    if fsp == 0 {
        return;
    }
    out.push(b'.');
    let digits = format!("{micros:06}");
    out.extend_from_slice(&digits.as_bytes()[..usize::from(fsp.min(6))]);
}

fn push_time_of_day(out: &mut Vec<u8>, micros_of_day: i64, fsp: u8) {
    let secs = micros_of_day / 1_000_000;
    push_2(out, (secs / 3600) as u32);
    out.push(b':');
    push_2(out, (secs / 60 % 60) as u32);
    out.push(b':');
    push_2(out, (secs % 60) as u32);
    push_fraction(out, (micros_of_day % 1_000_000) as u32, fsp);
}

/// Appends the text-protocol form of row `i` (NULL as 0xFB).
pub fn write_text(col: &PreparedColumn<'_>, i: usize, out: &mut Vec<u8>) {
    if col.array.is_null(i) {
        out.push(0xFB);
        return;
    }
    let mut tmp: Vec<u8>;
    let bytes: &[u8] = match &col.reader {
        ColumnReader::Bool(x) => if x.value(i) { b"1" } else { b"0" },
        ColumnReader::I64(f) => {
            let mut b = itoa::Buffer::new();
            out.put_lenenc_str(b.format(f(i)).as_bytes());
            return;
        }
        ColumnReader::U64(f) => {
            let mut b = itoa::Buffer::new();
            out.put_lenenc_str(b.format(f(i)).as_bytes());
            return;
        }
        ColumnReader::F32(f) => { tmp = float_text(f64::from(f(i)), true); &tmp }
        ColumnReader::F64(x) => { tmp = float_text(x.value(i), false); &tmp }
        ColumnReader::Decimal(f) => { tmp = Vec::with_capacity(24); f(i, &mut tmp); &tmp }
        ColumnReader::Bytes(f) => f(i),
        ColumnReader::Date(f) => { tmp = Vec::with_capacity(10); push_date(&mut tmp, f(i)); &tmp }
        ColumnReader::Timestamp(f) => {
            let us = f(i);
            tmp = Vec::with_capacity(26);
            push_date(&mut tmp, us.div_euclid(86_400_000_000));
            tmp.push(b' ');
            push_time_of_day(&mut tmp, us.rem_euclid(86_400_000_000), col.ty.decimals);
            &tmp
        }
        ColumnReader::Time(f) => { tmp = Vec::with_capacity(16); push_time_of_day(&mut tmp, f(i), col.ty.decimals); &tmp }
        ColumnReader::Text(v) => match &v[i] {
            Some(s) => s.as_bytes(),
            None => { out.push(0xFB); return; }
        },
    };
    out.put_lenenc_str(bytes);
}

/// MySQL prints floats in their shortest round-trip form, without a
/// trailing `.0`; FLOAT columns are printed at single precision.
fn float_text(v: f64, single: bool) -> Vec<u8> {
    if v.is_nan() || v.is_infinite() {
        return if v.is_nan() { b"NaN".to_vec() } else if v > 0.0 { b"inf".to_vec() } else { b"-inf".to_vec() };
    }
    let mut b = ryu::Buffer::new();
    let s = if single { b.format(v as f32) } else { b.format(v) };
    let s = s.strip_suffix(".0").unwrap_or(s);
    s.as_bytes().to_vec()
}

/// Whether the binary protocol sends the column as a length-encoded string.
fn is_lenenc(kind: MyKind) -> bool {
    matches!(kind, MyKind::NewDecimal | MyKind::VarString | MyKind::String | MyKind::Blob | MyKind::Json | MyKind::Null)
}

fn put_datetime(out: &mut Vec<u8>, us: i64, with_time: bool) {
    let (y, m, d) = civil(us.div_euclid(86_400_000_000));
    let tod = us.rem_euclid(86_400_000_000);
    let (h, mi, s, frac) = ((tod / 3_600_000_000) as u8, (tod / 60_000_000 % 60) as u8, (tod / 1_000_000 % 60) as u8, (tod % 1_000_000) as u32);
    let y = y.clamp(0, 9999) as u16;
    if !with_time || (h, mi, s, frac) == (0, 0, 0, 0) {
        out.push(4);
        out.extend_from_slice(&y.to_le_bytes());
        out.extend_from_slice(&[m as u8, d as u8]);
    } else if frac == 0 {
        out.push(7);
        out.extend_from_slice(&y.to_le_bytes());
        out.extend_from_slice(&[m as u8, d as u8, h, mi, s]);
    } else {
        out.push(11);
        out.extend_from_slice(&y.to_le_bytes());
        out.extend_from_slice(&[m as u8, d as u8, h, mi, s]);
        out.extend_from_slice(&frac.to_le_bytes());
    }
}

/// Appends the binary-protocol form of row `i`; the caller handles NULLs
/// through the row's null bitmap.
pub fn write_binary(col: &PreparedColumn<'_>, i: usize, out: &mut Vec<u8>) {
    let kind = col.ty.kind;
    if is_lenenc(kind) && !matches!(col.reader, ColumnReader::Bytes(_) | ColumnReader::Text(_)) {
        // Decimals (and any value shown as text) travel as strings.
        let mut text = Vec::new();
        write_text(col, i, &mut text);
        out.extend_from_slice(&text);
        return;
    }
    match &col.reader {
        ColumnReader::Bool(x) => out.push(u8::from(x.value(i))),
        ColumnReader::I64(f) => put_int(out, kind, f(i) as u64),
        ColumnReader::U64(f) => put_int(out, kind, f(i)),
        ColumnReader::F32(f) => out.extend_from_slice(&f(i).to_le_bytes()),
        ColumnReader::F64(x) => out.extend_from_slice(&x.value(i).to_le_bytes()),
        ColumnReader::Decimal(_) => {}
        ColumnReader::Bytes(f) => out.put_lenenc_str(f(i)),
        ColumnReader::Date(f) => put_datetime(out, f(i) * 86_400_000_000, false),
        ColumnReader::Timestamp(f) => put_datetime(out, f(i), true),
        ColumnReader::Time(f) => {
            let us = f(i);
            let neg = us < 0;
            let us = us.unsigned_abs();
            let (days, rest) = ((us / 86_400_000_000) as u32, us % 86_400_000_000);
            let (h, m, s, frac) = ((rest / 3_600_000_000) as u8, (rest / 60_000_000 % 60) as u8, (rest / 1_000_000 % 60) as u8, (rest % 1_000_000) as u32);
            if frac == 0 {
                out.push(8);
            } else {
                out.push(12);
            }
            out.push(u8::from(neg));
            out.extend_from_slice(&days.to_le_bytes());
            out.extend_from_slice(&[h, m, s]);
            if frac != 0 {
                out.extend_from_slice(&frac.to_le_bytes());
            }
        }
        ColumnReader::Text(v) => out.put_lenenc_str(v[i].as_deref().unwrap_or_default().as_bytes()),
    }
}

fn put_int(out: &mut Vec<u8>, kind: MyKind, v: u64) {
    match kind {
        MyKind::Tiny => out.push(v as u8),
        MyKind::Short => out.extend_from_slice(&(v as u16).to_le_bytes()),
        MyKind::Long => out.extend_from_slice(&(v as u32).to_le_bytes()),
        _ => out.extend_from_slice(&v.to_le_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(20_484), (2026, 1, 31));
        assert_eq!(civil(-1), (1969, 12, 31));
    }

    #[test]
    fn decimals_and_floats() {
        let mut out = Vec::new();
        decimal_digits("12345678".into(), 3, &mut out);
        assert_eq!(out, b"12345.678");
        out.clear();
        decimal_digits("-1".into(), 3, &mut out);
        assert_eq!(out, b"-0.001");
        assert_eq!(float_text(1.0, false), b"1");
        assert_eq!(float_text(-2.25, false), b"-2.25");
        assert_eq!(float_text(1e300, false), b"1e300");
        assert_eq!(float_text(f64::from(0.1f32), true), b"0.1");
    }
}
