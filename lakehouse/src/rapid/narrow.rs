//! Narrow storage for integer-like columns (integers, dates, timestamps,
//! decimals): a chunk stores each value as its distance from the chunk's
//! smallest value (a frame of reference), in the smallest unsigned integer
//! type that holds the chunk's range, when that takes at most half the
//! bytes of the column's own type. A chunk of `orderkey BIGINT` whose keys
//! span 30,000 values takes 2 bytes per row instead of 8; `DECIMAL(15,2)`
//! prices take 4 instead of 16.
//!
//! Scans widen the columns they read back to the column's type, chunk by
//! chunk, so every operator above sees the declared types.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, PrimitiveArray};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::datatypes::*;
use datafusion::error::{DataFusionError, Result};
use datafusion::scalar::ScalarValue;

use super::ColumnStats;

/// How a narrowed column of a chunk maps back to its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Narrowed {
    /// The chunk's smallest value (unscaled, for decimals).
    pub base: i128,
    /// The column's type.
    pub wide: DataType,
}

/// Whether narrow storage is on (`LAKEWAVE_RAPID_NARROW=off` in the
/// server's environment turns it off, for comparisons).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| !crate::switched_off("LAKEWAVE_RAPID_NARROW"))
}

/// Bytes per value of the types narrow storage applies to.
fn width(dt: &DataType) -> Option<u32> {
    Some(match dt {
        DataType::Int16 | DataType::UInt16 => 2,
        DataType::Int32 | DataType::UInt32 | DataType::Date32 => 4,
        DataType::Int64 | DataType::UInt64 | DataType::Timestamp(..) => 8,
        DataType::Decimal128(..) => 16,
        _ => return None,
    })
}

pub(crate) fn as_i128(v: &ScalarValue) -> Option<i128> {
    Some(match v {
        ScalarValue::Int16(Some(x)) => *x as i128,
        ScalarValue::Int32(Some(x)) => *x as i128,
        ScalarValue::Int64(Some(x)) => *x as i128,
        ScalarValue::UInt16(Some(x)) => *x as i128,
        ScalarValue::UInt32(Some(x)) => *x as i128,
        ScalarValue::UInt64(Some(x)) => *x as i128,
        ScalarValue::Date32(Some(x)) => *x as i128,
        ScalarValue::TimestampSecond(Some(x), _)
        | ScalarValue::TimestampMillisecond(Some(x), _)
        | ScalarValue::TimestampMicrosecond(Some(x), _)
        | ScalarValue::TimestampNanosecond(Some(x), _) => *x as i128,
        ScalarValue::Decimal128(Some(x), _, _) => *x,
        _ => return None,
    })
}

/// Offsets from `base`, in the unsigned type of `bytes` bytes. Null slots
/// hold arbitrary values, hence the wrapping arithmetic.
macro_rules! offsets {
    ($a:expr, $wide:ty, $base:expr, $bytes:expr) => {{
        let p = $a.as_primitive::<$wide>();
        let base: i128 = $base;
        match $bytes {
            1 => Arc::new(p.unary::<_, UInt8Type>(|v| (v as i128).wrapping_sub(base) as u8)) as ArrayRef,
            2 => Arc::new(p.unary::<_, UInt16Type>(|v| (v as i128).wrapping_sub(base) as u16)) as ArrayRef,
            4 => Arc::new(p.unary::<_, UInt32Type>(|v| (v as i128).wrapping_sub(base) as u32)) as ArrayRef,
            _ => Arc::new(p.unary::<_, UInt64Type>(|v| (v as i128).wrapping_sub(base) as u64)) as ArrayRef,
        }
    }};
}

/// The narrow form of a chunk's column, when it pays.
pub fn narrow(a: &ArrayRef, stats: &ColumnStats) -> Option<(ArrayRef, Narrowed)> {
    let wide = a.data_type().clone();
    let w = width(&wide)?;
    let (lo, hi) = (as_i128(stats.min.as_ref()?)?, as_i128(stats.max.as_ref()?)?);
    let range = hi.checked_sub(lo)?;
    let bytes: u32 = match range {
        r if r <= u8::MAX as i128 => 1,
        r if r <= u16::MAX as i128 => 2,
        r if r <= u32::MAX as i128 => 4,
        r if r <= u64::MAX as i128 => 8,
        _ => return None,
    };
    if bytes * 2 > w {
        return None;
    }
    let stored = match &wide {
        DataType::Int16 => offsets!(a, Int16Type, lo, bytes),
        DataType::Int32 => offsets!(a, Int32Type, lo, bytes),
        DataType::Int64 => offsets!(a, Int64Type, lo, bytes),
        DataType::UInt16 => offsets!(a, UInt16Type, lo, bytes),
        DataType::UInt32 => offsets!(a, UInt32Type, lo, bytes),
        DataType::UInt64 => offsets!(a, UInt64Type, lo, bytes),
        DataType::Date32 => offsets!(a, Date32Type, lo, bytes),
        DataType::Timestamp(TimeUnit::Second, _) => offsets!(a, TimestampSecondType, lo, bytes),
        DataType::Timestamp(TimeUnit::Millisecond, _) => offsets!(a, TimestampMillisecondType, lo, bytes),
        DataType::Timestamp(TimeUnit::Microsecond, _) => offsets!(a, TimestampMicrosecondType, lo, bytes),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => offsets!(a, TimestampNanosecondType, lo, bytes),
        DataType::Decimal128(..) => offsets!(a, Decimal128Type, lo, bytes),
        _ => return None,
    };
    Some((stored, Narrowed { base: lo, wide }))
}

/// Values from offsets: `$acc` is the type the addition is done in (i64 or
/// u64 for the integer types, i128 for decimals).
macro_rules! values {
    ($a:expr, $keep:expr, $wide:ty, $acc:ty, $base:expr) => {{
        let base = $base as $acc;
        type N = <$wide as ArrowPrimitiveType>::Native;
        let out: PrimitiveArray<$wide> = match $a.data_type() {
            DataType::UInt8 => map_rows($a.as_primitive::<UInt8Type>(), $keep, |o| base.wrapping_add(o as $acc) as N),
            DataType::UInt16 => map_rows($a.as_primitive::<UInt16Type>(), $keep, |o| base.wrapping_add(o as $acc) as N),
            DataType::UInt32 => map_rows($a.as_primitive::<UInt32Type>(), $keep, |o| base.wrapping_add(o as $acc) as N),
            DataType::UInt64 => map_rows($a.as_primitive::<UInt64Type>(), $keep, |o| base.wrapping_add(o as $acc) as N),
            other => return Err(DataFusionError::Internal(format!("a narrowed column stored as {other}"))),
        };
        out
    }};
}

/// `f` of each value of `a`, or only of the rows `keep` selects: those are
/// widened straight from the stored offsets, without copying the kept
/// offsets out first. `a` has no nulls when `keep` is given, and `keep`
/// selects fewer than half of its rows (see [`widen_rows`]).
fn map_rows<I: ArrowPrimitiveType, O: ArrowPrimitiveType>(
    a: &PrimitiveArray<I>,
    keep: Option<&BooleanBuffer>,
    f: impl Fn(I::Native) -> O::Native,
) -> PrimitiveArray<O> {
    let Some(keep) = keep else { return a.unary(f) };
    let values = a.values();
    let mut out = Vec::with_capacity(keep.count_set_bits());
    out.extend(keep.set_indices().map(|i| f(values[i])));
    PrimitiveArray::new(out.into(), None)
}

/// The column back in its own type.
pub fn widen(a: &ArrayRef, n: &Narrowed) -> Result<ArrayRef> {
    widen_rows(a, n, None)
}

/// The rows of the column that `keep` selects (all without it), back in
/// the column's type. When `keep` selects few rows (a join's keys, a
/// selective filter), they are widened one by one from the offsets; when
/// it selects most, the offsets are filtered (copying runs of rows) and
/// then widened in one vectorised pass, which was measured faster there
/// (TPC-H Q1 keeps 98% of `lineitem`). A column with nulls is filtered
/// first too.
pub fn widen_rows(a: &ArrayRef, n: &Narrowed, keep: Option<&BooleanArray>) -> Result<ArrayRef> {
    let keep = match keep {
        Some(k) if a.null_count() > 0 || k.null_count() > 0 || k.len() != a.len() || k.true_count() * 2 >= k.len() => {
            return widen(&datafusion::arrow::compute::filter(a, k)?, n);
        }
        Some(k) => Some(k.values()),
        None => None,
    };
    Ok(match &n.wide {
        DataType::Int16 => Arc::new(values!(a, keep, Int16Type, i64, n.base)),
        DataType::Int32 => Arc::new(values!(a, keep, Int32Type, i64, n.base)),
        DataType::Int64 => Arc::new(values!(a, keep, Int64Type, i64, n.base)),
        DataType::UInt16 => Arc::new(values!(a, keep, UInt16Type, u64, n.base)),
        DataType::UInt32 => Arc::new(values!(a, keep, UInt32Type, u64, n.base)),
        DataType::UInt64 => Arc::new(values!(a, keep, UInt64Type, u64, n.base)),
        DataType::Date32 => Arc::new(values!(a, keep, Date32Type, i64, n.base)),
        DataType::Timestamp(TimeUnit::Second, tz) => Arc::new(values!(a, keep, TimestampSecondType, i64, n.base).with_timezone_opt(tz.clone())),
        DataType::Timestamp(TimeUnit::Millisecond, tz) => {
            Arc::new(values!(a, keep, TimestampMillisecondType, i64, n.base).with_timezone_opt(tz.clone()))
        }
        DataType::Timestamp(TimeUnit::Microsecond, tz) => {
            Arc::new(values!(a, keep, TimestampMicrosecondType, i64, n.base).with_timezone_opt(tz.clone()))
        }
        DataType::Timestamp(TimeUnit::Nanosecond, tz) => {
            Arc::new(values!(a, keep, TimestampNanosecondType, i64, n.base).with_timezone_opt(tz.clone()))
        }
        // Additions in i64 where every value fits (any DECIMAL(p <= 18)
        // framed in 4 bytes or less): twice as fast as in i128.
        DataType::Decimal128(p, s) if !matches!(a.data_type(), DataType::UInt64) && i64::try_from(n.base).is_ok_and(|b| b.checked_add(u32::MAX as i64).is_some()) => {
            let base = n.base as i64;
            let out: PrimitiveArray<Decimal128Type> = match a.data_type() {
                DataType::UInt8 => map_rows(a.as_primitive::<UInt8Type>(), keep, |o| (base + o as i64) as i128),
                DataType::UInt16 => map_rows(a.as_primitive::<UInt16Type>(), keep, |o| (base + o as i64) as i128),
                DataType::UInt32 => map_rows(a.as_primitive::<UInt32Type>(), keep, |o| (base + o as i64) as i128),
                other => return Err(DataFusionError::Internal(format!("a narrowed column stored as {other}"))),
            };
            Arc::new(out.with_precision_and_scale(*p, *s)?)
        }
        DataType::Decimal128(p, s) => Arc::new(values!(a, keep, Decimal128Type, i128, n.base).with_precision_and_scale(*p, *s)?),
        other => return Err(DataFusionError::Internal(format!("narrow storage of {other}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Date32Array, Decimal128Array, Int16Array, Int64Array, TimestampMicrosecondArray, UInt64Array};

    fn stats_of(a: &ArrayRef) -> ColumnStats {
        super::super::encode::column_stats_for_tests(a)
    }

    fn round_trip(a: ArrayRef) -> Option<DataType> {
        let (stored, n) = narrow(&a, &stats_of(&a))?;
        let back = widen(&stored, &n).expect("widen");
        assert_eq!(&back, &a, "round trip of {:?}", a.data_type());
        assert_eq!(back.null_count(), a.null_count());
        // Some rows only: mostly kept (runs), a few kept (single rows),
        // none, and a selection with nulls (not selected).
        let len = a.len();
        let masks = [
            BooleanArray::from_iter((0..len).map(|i| Some(i % 5 != 1))),
            BooleanArray::from_iter((0..len).map(|i| Some(i % 7 == 3))),
            BooleanArray::from(vec![false; len]),
            BooleanArray::from_iter((0..len).map(|i| if i % 2 == 0 { None } else { Some(true) })),
        ];
        for mask in &masks {
            let rows = widen_rows(&stored, &n, Some(mask)).expect("widen rows");
            let want = datafusion::arrow::compute::filter(&a, mask).expect("filter");
            assert_eq!(&rows, &want, "rows {mask:?} of {:?}", a.data_type());
        }
        Some(stored.data_type().clone())
    }

    #[test]
    fn values_come_back_exactly() {
        let keys: ArrayRef = Arc::new(Int64Array::from_iter((1_000_000..1_030_000).map(|v| if v % 97 == 0 { None } else { Some(v) })));
        assert_eq!(round_trip(keys), Some(DataType::UInt16));
        let negative: ArrayRef = Arc::new(Int64Array::from(vec![Some(-5), None, Some(200), Some(-128)]));
        assert_eq!(round_trip(negative), Some(DataType::UInt16));
        let prices: ArrayRef =
            Arc::new(Decimal128Array::from(vec![Some(90_100), Some(10_494_950), None, Some(-3)]).with_precision_and_scale(15, 2).unwrap());
        assert_eq!(round_trip(prices), Some(DataType::UInt32));
        let huge: ArrayRef = Arc::new(
            Decimal128Array::from(vec![Some(i64::MAX as i128 * 1000), Some(i64::MAX as i128 * 1000 + 70_000)]).with_precision_and_scale(38, 0).unwrap(),
        );
        assert_eq!(round_trip(huge), Some(DataType::UInt32));
        let dates: ArrayRef = Arc::new(Date32Array::from(vec![Some(8_035), Some(10_561), None]));
        assert_eq!(round_trip(dates), Some(DataType::UInt16));
        let times: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(vec![Some(1_700_000_000_000_000), Some(1_700_000_000_000_255)]).with_timezone("+00:00"));
        assert_eq!(round_trip(times), Some(DataType::UInt8));
        let unsigned: ArrayRef = Arc::new(UInt64Array::from(vec![u64::MAX - 3, u64::MAX]));
        assert_eq!(round_trip(unsigned), Some(DataType::UInt8));
        // Without nulls, kept rows are widened straight from the offsets.
        let dense: ArrayRef = Arc::new(Int64Array::from_iter_values(5_000..40_000));
        assert_eq!(round_trip(dense), Some(DataType::UInt16));
        let cents: ArrayRef =
            Arc::new(Decimal128Array::from_iter_values((0..3000).map(|i| 100_000 + i * 37)).with_precision_and_scale(15, 2).unwrap());
        assert_eq!(round_trip(cents), Some(DataType::UInt32));
    }

    #[test]
    fn narrow_only_where_it_pays() {
        // Int16 over 0..1000 would need 2 bytes: no gain.
        let small: ArrayRef = Arc::new(Int16Array::from_iter_values(0..1000));
        assert!(narrow(&small, &stats_of(&small)).is_none());
        // A range wider than half the type's bytes stays plain.
        let wide: ArrayRef = Arc::new(Int64Array::from(vec![i64::MIN, 0, i64::MAX]));
        assert!(narrow(&wide, &stats_of(&wide)).is_none());
        // All nulls: nothing to frame.
        let nulls: ArrayRef = Arc::new(Int64Array::from(vec![None, None]));
        assert!(narrow(&nulls, &stats_of(&nulls)).is_none());
    }
}
