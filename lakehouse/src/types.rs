//! Type mapping between MySQL and Arrow, in one place.
//!
//! * [`arrow_type_for_sql`] turns a declared MySQL column type (from either
//!   DDL dialect) into the Arrow type the table is read as.
//! * [`mysql_type_of`] describes an Arrow type as MySQL presents it: the
//!   protocol kind, flags, display length and decimals used by the wire
//!   layer, and the names shown by `information_schema` and `SHOW COLUMNS`.

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::sql::sqlparser::ast::{
    CharacterLength, DataType as SqlType, ExactNumberInfo, TimezoneInfo,
};

use crate::error::{LakeError, Result};

/// The MySQL protocol type a column is sent as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MyKind {
    Tiny,
    Short,
    Long,
    LongLong,
    Float,
    Double,
    NewDecimal,
    VarString,
    String,
    Blob,
    Date,
    Time,
    DateTime,
    Timestamp,
    Json,
    Null,
}

/// How one Arrow type appears to MySQL clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MySqlType {
    pub kind: MyKind,
    pub unsigned: bool,
    /// Binary data (charset `binary`) rather than text.
    pub binary: bool,
    /// Display length in bytes, as MySQL reports it in column definitions.
    pub length: u32,
    pub decimals: u8,
    /// `DATA_TYPE` of information_schema.COLUMNS (`int`, `varchar`, ...).
    pub data_type: &'static str,
    /// `COLUMN_TYPE` (`int unsigned`, `decimal(12,3)`, `datetime(6)`, ...).
    pub column_type: String,
    pub numeric_precision: Option<u64>,
    pub numeric_scale: Option<u64>,
}

impl MySqlType {
    fn simple(kind: MyKind, data_type: &'static str, length: u32) -> Self {
        Self {
            kind,
            unsigned: false,
            binary: matches!(
                kind,
                MyKind::Tiny
                    | MyKind::Short
                    | MyKind::Long
                    | MyKind::LongLong
                    | MyKind::Float
                    | MyKind::Double
                    | MyKind::NewDecimal
                    | MyKind::Date
                    | MyKind::Time
                    | MyKind::DateTime
                    | MyKind::Timestamp
                    | MyKind::Null
            ),
            length,
            decimals: 0,
            data_type,
            column_type: data_type.to_string(),
            numeric_precision: None,
            numeric_scale: None,
        }
    }

    fn int(kind: MyKind, name: &'static str, length: u32, precision: u64, unsigned: bool) -> Self {
        let mut t = Self::simple(kind, name, length);
        t.unsigned = unsigned;
        if unsigned {
            t.column_type = format!("{name} unsigned");
        }
        t.numeric_precision = Some(precision);
        t.numeric_scale = Some(0);
        t
    }

    pub fn is_text(&self) -> bool {
        !self.binary
            && matches!(self.kind, MyKind::VarString | MyKind::String | MyKind::Blob | MyKind::Json)
    }
}

/// Fractional-second digits MySQL can show for an Arrow time unit.
fn fsp(unit: &TimeUnit) -> u8 {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond | TimeUnit::Nanosecond => 6,
    }
}

/// Describes an Arrow type the way MySQL would show the matching column.
pub fn mysql_type_of(dt: &DataType) -> MySqlType {
    use DataType as D;
    match dt {
        D::Null => MySqlType::simple(MyKind::Null, "null", 0),
        D::Boolean => {
            let mut t = MySqlType::int(MyKind::Tiny, "tinyint", 1, 3, false);
            t.column_type = "tinyint(1)".into();
            t
        }
        D::Int8 => MySqlType::int(MyKind::Tiny, "tinyint", 4, 3, false),
        D::UInt8 => MySqlType::int(MyKind::Tiny, "tinyint", 3, 3, true),
        D::Int16 => MySqlType::int(MyKind::Short, "smallint", 6, 5, false),
        D::UInt16 => MySqlType::int(MyKind::Short, "smallint", 5, 5, true),
        D::Int32 => MySqlType::int(MyKind::Long, "int", 11, 10, false),
        D::UInt32 => MySqlType::int(MyKind::Long, "int", 10, 10, true),
        D::Int64 => MySqlType::int(MyKind::LongLong, "bigint", 20, 19, false),
        D::UInt64 => MySqlType::int(MyKind::LongLong, "bigint", 20, 20, true),
        D::Float16 | D::Float32 => {
            let mut t = MySqlType::simple(MyKind::Float, "float", 12);
            t.decimals = 31;
            t.numeric_precision = Some(12);
            t
        }
        D::Float64 => {
            let mut t = MySqlType::simple(MyKind::Double, "double", 22);
            t.decimals = 31;
            t.numeric_precision = Some(22);
            t
        }
        D::Decimal32(p, s) | D::Decimal64(p, s) | D::Decimal128(p, s) | D::Decimal256(p, s) => {
            let (p, s) = (*p as u32, (*s).max(0) as u32);
            let mut t = MySqlType::simple(MyKind::NewDecimal, "decimal", p + 1 + u32::from(s > 0));
            t.decimals = s as u8;
            t.column_type = format!("decimal({p},{s})");
            t.numeric_precision = Some(p.into());
            t.numeric_scale = Some(s.into());
            t
        }
        D::Utf8 | D::LargeUtf8 | D::Utf8View => {
            MySqlType::simple(MyKind::Blob, "text", 65_535 * 4)
        }
        D::Binary | D::LargeBinary | D::BinaryView => {
            let mut t = MySqlType::simple(MyKind::Blob, "blob", 65_535);
            t.binary = true;
            t
        }
        D::FixedSizeBinary(n) => {
            let mut t = MySqlType::simple(MyKind::String, "binary", (*n).max(0) as u32);
            t.binary = true;
            t.column_type = format!("binary({n})");
            t
        }
        D::Date32 | D::Date64 => MySqlType::simple(MyKind::Date, "date", 10),
        D::Time32(unit) | D::Time64(unit) => {
            let f = fsp(unit);
            let mut t = MySqlType::simple(MyKind::Time, "time", 10 + u32::from(f) + u32::from(f > 0));
            t.decimals = f;
            if f > 0 {
                t.column_type = format!("time({f})");
            }
            t
        }
        D::Timestamp(unit, tz) => {
            let f = fsp(unit);
            let (kind, name) = match tz {
                None => (MyKind::DateTime, "datetime"),
                Some(_) => (MyKind::Timestamp, "timestamp"),
            };
            let mut t = MySqlType::simple(kind, name, 19 + u32::from(f) + u32::from(f > 0));
            t.decimals = f;
            if f > 0 {
                t.column_type = format!("{name}({f})");
            }
            t
        }
        D::Dictionary(_, value) => mysql_type_of(value),
        D::RunEndEncoded(_, values) => mysql_type_of(values.data_type()),
        D::List(_)
        | D::LargeList(_)
        | D::ListView(_)
        | D::LargeListView(_)
        | D::FixedSizeList(_, _)
        | D::Struct(_)
        | D::Map(_, _)
        | D::Union(_, _) => MySqlType::simple(MyKind::Json, "json", u32::MAX),
        D::Interval(_) | D::Duration(_) => {
            let mut t = MySqlType::simple(MyKind::VarString, "varchar", 64 * 4);
            t.column_type = "varchar(64)".into();
            t
        }
        // Any type added to Arrow later is shown as text rather than refused.
        #[allow(unreachable_patterns)]
        _ => MySqlType::simple(MyKind::Blob, "text", 65_535 * 4),
    }
}

fn precision_scale(info: &ExactNumberInfo) -> (u8, i8) {
    match info {
        ExactNumberInfo::None => (10, 0),
        ExactNumberInfo::Precision(p) => ((*p).min(76) as u8, 0),
        ExactNumberInfo::PrecisionAndScale(p, s) => ((*p).min(76) as u8, (*s).clamp(0, 76) as i8),
    }
}

fn decimal(p: u8, s: i8) -> Result<DataType> {
    if p == 0 || p > 65 || s as i64 > p as i64 {
        return Err(LakeError::InvalidDefinition(format!(
            "DECIMAL({p},{s}) is out of range: precision must be 1..65 and scale at most the precision"
        )));
    }
    Ok(if p <= 38 { DataType::Decimal128(p, s) } else { DataType::Decimal256(p, s) })
}

fn time_unit(fsp: Option<u64>) -> TimeUnit {
    match fsp {
        None | Some(0) => TimeUnit::Second,
        Some(1..=3) => TimeUnit::Millisecond,
        Some(_) => TimeUnit::Microsecond,
    }
}

/// The Arrow type a declared MySQL column type is read as.
pub fn arrow_type_for_sql(sql: &SqlType) -> Result<DataType> {
    use DataType as D;
    use SqlType as S;
    Ok(match sql {
        S::Bool | S::Boolean => D::Boolean,
        S::TinyInt(Some(1)) => D::Boolean,
        S::TinyInt(_) => D::Int8,
        S::TinyIntUnsigned(_) | S::UTinyInt | S::UInt8 => D::UInt8,
        S::SmallInt(_) | S::Int2(_) | S::Int16 => D::Int16,
        S::SmallIntUnsigned(_) | S::USmallInt | S::Int2Unsigned(_) | S::UInt16 => D::UInt16,
        S::MediumInt(_) | S::Int(_) | S::Integer(_) | S::Int4(_) | S::Int32 | S::Signed
        | S::SignedInteger => D::Int32,
        S::MediumIntUnsigned(_) | S::IntUnsigned(_) | S::IntegerUnsigned(_)
        | S::Int4Unsigned(_) | S::UInt32 => D::UInt32,
        S::BigInt(_) | S::Int8(_) | S::Int64 => D::Int64,
        S::BigIntUnsigned(_) | S::UBigInt | S::Int8Unsigned(_) | S::UInt64 | S::Unsigned
        | S::UnsignedInteger => D::UInt64,
        S::Float(info) | S::FloatUnsigned(info) => match info {
            ExactNumberInfo::Precision(p) | ExactNumberInfo::PrecisionAndScale(p, _) if *p > 24 => {
                D::Float64
            }
            _ => D::Float32,
        },
        S::Float4 | S::Float32 | S::Real | S::RealUnsigned => D::Float32,
        S::Double(_) | S::DoubleUnsigned(_) | S::DoublePrecision | S::DoublePrecisionUnsigned
        | S::Float8 | S::Float64 => D::Float64,
        S::Decimal(info) | S::DecimalUnsigned(info) | S::Numeric(info) | S::Dec(info)
        | S::DecUnsigned(info) | S::BigDecimal(info) | S::BigNumeric(info) => {
            let (p, s) = precision_scale(info);
            decimal(p, s)?
        }
        S::Char(_) | S::Character(_) | S::Varchar(_) | S::CharacterVarying(_)
        | S::CharVarying(_) | S::Nvarchar(_) | S::Text | S::TinyText | S::MediumText
        | S::LongText | S::String(_) | S::Uuid | S::Clob(_) | S::Enum(_, _) | S::Set(_)
        | S::JSON => D::Utf8,
        S::Binary(_) | S::Varbinary(_) | S::Blob(_) | S::TinyBlob | S::MediumBlob
        | S::LongBlob | S::Bytes(_) | S::Bytea | S::Bit(_) => D::Binary,
        S::Date | S::Date32 => D::Date32,
        S::Datetime(fsp) | S::TimestampNtz(fsp) => D::Timestamp(time_unit(*fsp), None),
        S::Timestamp(fsp, tz) => match tz {
            TimezoneInfo::WithTimeZone | TimezoneInfo::Tz => {
                D::Timestamp(time_unit(*fsp), Some("+00:00".into()))
            }
            _ => D::Timestamp(time_unit(*fsp), None),
        },
        S::Time(fsp, _) => match time_unit(*fsp) {
            TimeUnit::Second => D::Time32(TimeUnit::Second),
            TimeUnit::Millisecond => D::Time32(TimeUnit::Millisecond),
            unit => D::Time64(unit),
        },
        other => {
            return Err(LakeError::NotSupported(format!("column type {other}")));
        }
    })
}

/// The declared display form of a MySQL type, lower-cased as MySQL shows it.
pub fn sql_type_display(sql: &SqlType) -> String {
    let text = match sql {
        SqlType::Varchar(Some(CharacterLength::IntegerLength { length, .. })) => {
            format!("varchar({length})")
        }
        other => other.to_string(),
    };
    text.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_display() {
        let t = mysql_type_of(&DataType::UInt32);
        assert_eq!(t.column_type, "int unsigned");
        assert!(t.unsigned);
        let t = mysql_type_of(&DataType::Decimal128(12, 3));
        assert_eq!((t.column_type.as_str(), t.length, t.decimals), ("decimal(12,3)", 14, 3));
        let t = mysql_type_of(&DataType::Timestamp(TimeUnit::Microsecond, None));
        assert_eq!((t.column_type.as_str(), t.length), ("datetime(6)", 26));
    }

    #[test]
    fn declared_types() -> Result<()> {
        assert_eq!(arrow_type_for_sql(&SqlType::TinyInt(Some(1)))?, DataType::Boolean);
        assert_eq!(arrow_type_for_sql(&SqlType::TinyInt(None))?, DataType::Int8);
        assert_eq!(arrow_type_for_sql(&SqlType::BigIntUnsigned(None))?, DataType::UInt64);
        assert_eq!(
            arrow_type_for_sql(&SqlType::Decimal(ExactNumberInfo::PrecisionAndScale(65, 30)))?,
            DataType::Decimal256(65, 30)
        );
        assert!(arrow_type_for_sql(&SqlType::Decimal(ExactNumberInfo::PrecisionAndScale(66, 0))).is_err());
        Ok(())
    }
}
