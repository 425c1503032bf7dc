//! Schema inference for text files: each value is classified, and the
//! classes of a column widen across rows and files
//! (integer → DECIMAL(p,s) → DOUBLE → text; DATE → DATETIME → text).
//! Fixed-point numbers are DECIMAL with the precision and scale they need,
//! never floating point. Files with a header are merged by column name, so
//! a column that only some files have is kept (the others read it as NULL).

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::DataFusionError;
use object_store::{ObjectMeta, ObjectStore};

use super::tokenize::{FieldKind, Record, Tokenizer};
use super::{BadRows, TextOptions};

/// Rows read from each file in sample mode.
pub const SAMPLE_ROWS: usize = 10_000;

/// Bytes read from the head of an uncompressed file in sample mode.
const SAMPLE_BYTES: u64 = 16 << 20;

/// What a column's values have been so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Only NULLs seen.
    Empty,
    Bool,
    /// Integer digits needed.
    Int(u8),
    /// Integer digits and scale.
    Decimal(u8, u8),
    Double,
    Date,
    Timestamp,
    Time,
    Text,
}

impl Class {
    pub fn of(value: &str, options: &TextOptions) -> Class {
        let v = value.trim();
        if v.is_empty() {
            return Class::Empty;
        }
        let body = v.strip_prefix(['+', '-']).unwrap_or(v);
        let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if !(whole.is_empty() && fraction.is_empty()) && digits(whole) && digits(fraction) {
            let int_digits = whole.trim_start_matches('0').len().max(1);
            if body.contains('.') && !fraction.is_empty() {
                return if int_digits + fraction.len() <= 38 {
                    Class::Decimal(int_digits as u8, fraction.len() as u8)
                } else {
                    Class::Double
                };
            }
            if !body.contains('.') {
                return if v.parse::<i64>().is_ok() { Class::Int(int_digits as u8) } else { Class::Decimal(int_digits.min(38) as u8, 0) };
            }
        }
        if v.parse::<f64>().is_ok() && v.bytes().any(|b| b.is_ascii_digit()) {
            return Class::Double;
        }
        if matches!(v.to_ascii_lowercase().as_str(), "true" | "false") {
            return Class::Bool;
        }
        let date = match &options.date_format {
            Some(f) => f.read(v).is_some(),
            None => chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok(),
        };
        if date {
            return Class::Date;
        }
        let mut ts = super::convert::ColumnBuf::new(&DataType::Timestamp(TimeUnit::Microsecond, None), options.timestamp_format.clone(), options.encoding);
        if ts.push(v.as_bytes(), false).is_ok() {
            return Class::Timestamp;
        }
        let time = match &options.time_format {
            Some(f) => f.read(v).is_some(),
            None => chrono::NaiveTime::parse_from_str(v, "%H:%M:%S%.f").is_ok(),
        };
        if time {
            return Class::Time;
        }
        Class::Text
    }

    /// The narrowest class holding values of both.
    pub fn widen(self, other: Class) -> Class {
        use Class::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Empty, x) | (x, Empty) => x,
            (Int(a), Int(b)) => Int(a.max(b)),
            (Int(a), Decimal(b, s)) | (Decimal(b, s), Int(a)) => Decimal(a.max(b), s),
            (Decimal(a, s), Decimal(b, t)) => {
                let (i, sc) = (a.max(b), s.max(t));
                if i as usize + sc as usize <= 38 { Decimal(i, sc) } else { Double }
            }
            (Int(_) | Decimal(..) | Double, Int(_) | Decimal(..) | Double) => Double,
            (Date, Timestamp) | (Timestamp, Date) => Timestamp,
            _ => Text,
        }
    }

    pub fn data_type(self) -> DataType {
        match self {
            Class::Empty | Class::Text => DataType::Utf8,
            Class::Bool => DataType::Boolean,
            Class::Int(_) => DataType::Int64,
            Class::Decimal(i, s) => DataType::Decimal128((i + s).max(1), s as i8),
            Class::Double => DataType::Float64,
            Class::Date => DataType::Date32,
            Class::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Class::Time => DataType::Time64(TimeUnit::Microsecond),
        }
    }
}

/// The head of a file (all of it when `limit` is None), decompressed.
async fn read_head(
    options: &TextOptions,
    store: &Arc<dyn ObjectStore>,
    meta: &ObjectMeta,
    limit: Option<u64>,
) -> datafusion::error::Result<Vec<u8>> {
    use object_store::ObjectStoreExt;
    let c = options.compression;
    let prefix = limit.is_some_and(|n| !c.is_compressed() && meta.size > n);
    let bytes = match limit {
        Some(n) if prefix => store.get_range(&meta.location, 0..n).await?,
        _ => store.get(&meta.location).await?.bytes().await?,
    };
    let (data, damage) = super::decode(options, &format!("/{}", meta.location), bytes, limit, prefix)?;
    match damage {
        Some(message) if options.bad_rows == BadRows::Error => Err(DataFusionError::Execution(message)),
        _ => Ok(data),
    }
}

/// Column names and classes of one file.
fn infer_file(options: &TextOptions, data: &[u8], path: &str) -> datafusion::error::Result<(Vec<String>, Vec<Class>)> {
    let mut tok = Tokenizer::new(data, options.dialect.clone());
    let mut rec = Record::default();
    let next = |tok: &mut Tokenizer, rec: &mut Record| match tok.next_record(rec) {
        Ok(more) => Ok(more),
        Err(_) if options.bad_rows != BadRows::Error => Ok(false),
        Err(super::tokenize::TokenError::UnterminatedQuote { line }) => Err(DataFusionError::Execution(format!(
            "file '{path}', line {line}: a quoted field is not closed before the end of the file"
        ))),
    };
    for _ in 0..options.skip_rows {
        if !next(&mut tok, &mut rec)? {
            return Ok((Vec::new(), Vec::new()));
        }
    }
    let mut names = Vec::new();
    if options.has_header {
        if !next(&mut tok, &mut rec)? {
            return Ok((Vec::new(), Vec::new()));
        }
        names = (0..rec.len()).map(|i| decode(options, rec.field(i).0).trim().to_string()).collect();
    }
    let mut classes: Vec<Class> = vec![Class::Empty; names.len()];
    let mut rows = 0usize;
    while options.sample_rows.is_none_or(|n| rows < n) && next(&mut tok, &mut rec)? {
        rows += 1;
        if classes.len() < rec.len() {
            classes.resize(rec.len(), Class::Empty);
        }
        for (i, class) in classes.iter_mut().enumerate().take(rec.len()) {
            let (raw, kind) = rec.field(i);
            let value = decode(options, raw);
            let null = match kind {
                FieldKind::EscapedNull => true,
                FieldKind::Quoted => false,
                FieldKind::Plain => options.null_marker.as_deref().is_some_and(|m| m == raw) || raw.is_empty(),
            };
            let c = if null {
                Class::Empty
            } else if kind == FieldKind::Quoted && value.is_empty() {
                Class::Text
            } else {
                Class::of(&value, options)
            };
            *class = class.widen(c);
        }
    }
    Ok((names, classes))
}

fn decode(options: &TextOptions, raw: &[u8]) -> String {
    match options.encoding {
        super::convert::Encoding::Utf8 => String::from_utf8_lossy(raw).into_owned(),
        super::convert::Encoding::Latin1 => raw.iter().map(|&b| b as char).collect(),
    }
}

/// Column names for a header: blanks and duplicates get positional names.
fn column_names(header: &[String], count: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(count);
    for i in 0..count {
        let mut name = header.get(i).map(|h| h.trim_start_matches('\u{feff}').to_string()).unwrap_or_default();
        if name.is_empty() || out.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
            name = format!("col_{}", i + 1);
        }
        out.push(name);
    }
    out
}

/// The schema of a set of files: merged by header name when the files have
/// headers, by position otherwise.
pub async fn infer_schema(
    options: &TextOptions,
    store: &Arc<dyn ObjectStore>,
    objects: &[ObjectMeta],
) -> datafusion::error::Result<SchemaRef> {
    let limit = options.sample_rows.map(|_| SAMPLE_BYTES);
    let mut columns: Vec<(String, Class)> = Vec::new();
    for meta in objects {
        let data = read_head(options, store, meta, limit).await?;
        let path = format!("/{}", meta.location);
        let (header, classes) = infer_file(options, &data, &path)?;
        // With a header, fields past it are bad rows, not columns.
        let count = if options.has_header && !header.is_empty() { header.len() } else { header.len().max(classes.len()) };
        if count == 0 {
            continue;
        }
        let names = column_names(&header, count);
        if options.has_header {
            for (name, class) in names.into_iter().zip(classes.into_iter().chain(std::iter::repeat(Class::Empty))).take(count) {
                match columns.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                    Some((_, c)) => *c = c.widen(class),
                    None => columns.push((name, class)),
                }
            }
        } else {
            for (i, (name, class)) in names.into_iter().zip(classes.into_iter().chain(std::iter::repeat(Class::Empty))).enumerate() {
                match columns.get_mut(i) {
                    Some((_, c)) => *c = c.widen(class),
                    None => columns.push((name, class)),
                }
            }
        }
    }
    Ok(Arc::new(Schema::new(
        columns.into_iter().map(|(name, class)| Field::new(name, class.data_type(), true)).collect::<Vec<_>>(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TableDef;

    fn options() -> TextOptions {
        let def = TableDef::external("t", "csv", vec!["/x".into()], Default::default());
        TextOptions::from_table(&def).unwrap()
    }

    #[test]
    fn classes_widen() {
        let o = options();
        let class = |vals: &[&str]| vals.iter().fold(Class::Empty, |c, v| c.widen(Class::of(v, &o))).data_type();
        assert_eq!(class(&["1", "", "22"]), DataType::Int64);
        assert_eq!(class(&["1", "0.25", "-3.5"]), DataType::Decimal128(3, 2));
        assert_eq!(class(&["1", "2.5e3"]), DataType::Float64);
        assert_eq!(class(&["2024-01-01", "2024-01-02 10:00:00"]), DataType::Timestamp(TimeUnit::Microsecond, None));
        assert_eq!(class(&["2024-01-01", "soon"]), DataType::Utf8);
        assert_eq!(class(&["12:00:01"]), DataType::Time64(TimeUnit::Microsecond));
        assert_eq!(class(&["true", "FALSE"]), DataType::Boolean);
        assert_eq!(class(&["99999999999999999999"]), DataType::Decimal128(20, 0));
        assert_eq!(class(&["007"]), DataType::Int64);
    }
}
