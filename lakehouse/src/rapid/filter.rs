//! Filters evaluated by the scan of a loaded table, before its rows are
//! widened (late materialisation).
//!
//! A `FilterExec` over a loaded table's scan hands its predicate to the scan
//! (DataFusion's filter pushdown). For each chunk the scan then:
//!
//! * compares `column <op> literal` conjuncts on the stored, narrowed
//!   offsets directly (`shipdate >= d` is `offset >= d - base` on 2-byte
//!   integers), without widening the column;
//! * evaluates the other conjuncts over just the columns they read, on the
//!   rows still selected when few are;
//! * filters the stored columns it returns and widens only the rows kept.
//!
//! The rows a scan returns are exactly those `FilterExec` would keep: a
//! conjunct that is null for a row drops it, as `WHERE` does.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::array::AsArray;
use datafusion::arrow::buffer::{BooleanBuffer, Buffer};
use datafusion::arrow::compute::{and, filter, prep_null_mask_filter};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef, UInt8Type, UInt16Type, UInt32Type, UInt64Type};
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, DynamicFilterPhysicalExpr, Literal};

use super::Chunk;
use crate::key_bitmap::{KeyBitmap, bitmap_type};

/// Whether scans of loaded tables take static filters
/// (`LAKEWAVE_RAPID_SCAN_FILTERS=off` in the server's environment leaves
/// them to `FilterExec`, for comparisons).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| !crate::switched_off("LAKEWAVE_RAPID_SCAN_FILTERS"))
}

/// Below this share of a chunk's rows still selected, further conjuncts are
/// evaluated on the selected rows only.
const NARROW_EVALUATION_SHARE: f64 = 0.5;

/// One conjunct of a scan's predicate.
#[derive(Debug, Clone)]
pub struct Conjunct {
    /// Over the table's columns (indices into the table's schema).
    pub expr: Arc<dyn PhysicalExpr>,
    /// The table's columns it reads, ascending.
    columns: Vec<usize>,
    /// The same expression over a batch of just `columns`.
    compact: Arc<dyn PhysicalExpr>,
    compact_schema: SchemaRef,
    /// `column op value` with the value in the column's own terms (unscaled
    /// for decimals): comparable on narrowed offsets.
    simple: Option<(usize, Operator, i128)>,
}

/// Whether `expr` holds a dynamic (runtime join) filter: those are left to
/// [`crate::runtime_filter::RuntimeFilterExec`], which gives up on filters
/// that keep every row.
pub fn is_dynamic(expr: &Arc<dyn PhysicalExpr>) -> bool {
    let mut found = false;
    let _ = expr.apply(|e| {
        if e.downcast_ref::<DynamicFilterPhysicalExpr>().is_some() {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// `expr`, over the scan's output columns (`columns[i]` is the table column
/// of output column i), as a conjunct over the table's columns.
pub fn conjunct(expr: &Arc<dyn PhysicalExpr>, columns: &[usize], table: &SchemaRef) -> Result<Conjunct> {
    let over_table = Arc::clone(expr)
        .transform(|e| {
            let Some(c) = e.downcast_ref::<Column>() else { return Ok(Transformed::no(e)) };
            let i = *columns.get(c.index()).ok_or_else(|| DataFusionError::Internal(format!("column {c} outside the scan")))?;
            Ok(Transformed::yes(Arc::new(Column::new(table.field(i).name(), i)) as Arc<dyn PhysicalExpr>))
        })
        .data()?;
    let mut read = BTreeSet::new();
    over_table.apply(|e| {
        if let Some(c) = e.downcast_ref::<Column>() {
            read.insert(c.index());
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    let read: Vec<usize> = read.into_iter().collect();
    let compact_schema = Arc::new(Schema::new(read.iter().map(|i| table.field(*i).clone()).collect::<Vec<_>>()));
    let compact = Arc::clone(&over_table)
        .transform(|e| {
            let Some(c) = e.downcast_ref::<Column>() else { return Ok(Transformed::no(e)) };
            let at = read.binary_search(&c.index()).map_err(|_| DataFusionError::Internal(format!("column {c} not collected")))?;
            Ok(Transformed::yes(Arc::new(Column::new(c.name(), at)) as Arc<dyn PhysicalExpr>))
        })
        .data()?;
    let simple = simple_comparison(&over_table, table);
    Ok(Conjunct { expr: over_table, columns: read, compact, compact_schema, simple })
}

/// `column op literal` or `literal op column`, the literal of the column's
/// own type (same scale for decimals), as (column, op with the column on
/// the left, unscaled value).
fn simple_comparison(expr: &Arc<dyn PhysicalExpr>, table: &SchemaRef) -> Option<(usize, Operator, i128)> {
    let b = expr.downcast_ref::<BinaryExpr>()?;
    let (column, literal, op) = match (b.left().downcast_ref::<Column>(), b.right().downcast_ref::<Literal>()) {
        (Some(c), Some(l)) => (c, l, *b.op()),
        _ => {
            let c = b.right().downcast_ref::<Column>()?;
            let l = b.left().downcast_ref::<Literal>()?;
            (c, l, b.op().swap()?)
        }
    };
    if !matches!(op, Operator::Eq | Operator::NotEq | Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq) {
        return None;
    }
    let column_type = table.field(column.index()).data_type();
    let value = literal.value();
    let same_terms = match (column_type, value.data_type()) {
        (DataType::Decimal128(_, a), DataType::Decimal128(_, b)) => a == &b,
        (a, b) => a == &b,
    };
    if !same_terms {
        return None;
    }
    // Integers, dates, timestamps (of the same unit and zone) and decimals.
    let v = super::narrow::as_i128(value)?;
    Some((column.index(), op, v))
}

/// Which rows of `chunk` pass every conjunct (and are visible): None when
/// all rows do.
pub fn select(chunk: &Chunk, conjuncts: &[Conjunct]) -> Result<Option<BooleanArray>> {
    let rows = chunk.batch.num_rows();
    let mut mask: Option<BooleanArray> = chunk.visible.clone();
    // Comparisons the chunk's bounds decide are dropped (every row passes)
    // or end the chunk (none does); comparisons on narrowed offsets go
    // first, as the cheapest; the rest after them.
    let mut simple = Vec::new();
    let mut rest = Vec::new();
    for c in conjuncts {
        match c.simple {
            Some((i, op, v)) => match decided_by_bounds(chunk, i, op, v) {
                Some(true) => {}
                Some(false) => return Ok(Some(BooleanArray::new(BooleanBuffer::new_unset(rows), None))),
                None if chunk.is_narrowed(i) => simple.push(c),
                None => rest.push(c),
            },
            None => rest.push(c),
        }
    }
    for c in simple {
        let Some((i, op, v)) = c.simple else { continue };
        let Some(n) = chunk.narrowed(i) else { continue };
        let keep = compare_offsets(chunk.batch.column(i), op, v - n.base)?;
        mask = Some(combine(mask, keep)?);
        if mask.as_ref().is_some_and(|m| m.true_count() == 0) {
            return Ok(mask);
        }
    }
    for c in rest {
        let selected = mask.as_ref().map_or(rows, BooleanArray::true_count);
        if selected == 0 {
            break;
        }
        // Rows change capture hid are never evaluated: an expression that
        // fails on a deleted row must not fail the query.
        let subset = mask
            .as_ref()
            .filter(|_| chunk.visible.is_some() || (selected as f64) < rows as f64 * NARROW_EVALUATION_SHARE);
        let arrays = c
            .columns
            .iter()
            .map(|i| column_rows(chunk, *i, subset))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let count = subset.map_or(rows, |_| selected);
        let options = RecordBatchOptions::new().with_row_count(Some(count));
        let batch = RecordBatch::try_new_with_options(Arc::clone(&c.compact_schema), arrays, &options)?;
        let value = c.compact.evaluate(&batch)?.into_array(count)?;
        let keep = value
            .as_any()
            .downcast_ref::<BooleanArray>()
            .cloned()
            .ok_or_else(|| DataFusionError::Internal(format!("filter {} gave {} instead of booleans", c.expr, value.data_type())))?;
        mask = Some(match subset {
            Some(m) => spread(m, &keep),
            None => combine(mask, keep)?,
        });
    }
    Ok(mask.filter(|m| m.true_count() < rows))
}

/// What `column op v` is for every row of the chunk, when its bounds
/// decide it: true only when the column has no nulls (a null compares as
/// null, which drops the row).
fn decided_by_bounds(chunk: &Chunk, i: usize, op: Operator, v: i128) -> Option<bool> {
    let stats = chunk.stats.get(i)?;
    let lo = super::narrow::as_i128(stats.min.as_ref()?)?;
    let hi = super::narrow::as_i128(stats.max.as_ref()?)?;
    let outcome = match op {
        Operator::Eq if v < lo || v > hi => false,
        Operator::Eq if lo == v && hi == v => true,
        Operator::NotEq if v < lo || v > hi => true,
        Operator::NotEq if lo == v && hi == v => false,
        Operator::Lt if hi < v => true,
        Operator::Lt if lo >= v => false,
        Operator::LtEq if hi <= v => true,
        Operator::LtEq if lo > v => false,
        Operator::Gt if lo > v => true,
        Operator::Gt if hi <= v => false,
        Operator::GtEq if lo >= v => true,
        Operator::GtEq if hi < v => false,
        _ => return None,
    };
    (!outcome || stats.nulls == 0).then_some(outcome)
}

/// Column `i` of the chunk in the table's type, only the rows of `mask`
/// when given: a narrowed column's kept rows are widened straight from
/// the stored offsets.
pub fn column_rows(chunk: &Chunk, i: usize, mask: Option<&BooleanArray>) -> Result<ArrayRef> {
    let Some(mask) = mask else { return chunk.column(i) };
    let stored = chunk.batch.column(i);
    match chunk.narrowed(i) {
        Some(n) => super::narrow::widen_rows(stored, n, Some(mask)),
        None => Ok(filter(stored, mask)?),
    }
}

/// Which rows of the chunk have a key in `bitmap` in column `i`: on the
/// stored offsets of a narrowed column, so nothing is widened. None for a
/// column whose type a bitmap does not test.
pub fn key_rows(chunk: &Chunk, i: usize, bitmap: &KeyBitmap) -> Option<BooleanArray> {
    let stored = chunk.batch.column(i);
    match chunk.narrowed(i) {
        Some(n) if bitmap_type(&n.wide) => bitmap.contains_offsets(stored.as_ref(), n.base),
        Some(_) => None,
        None => bitmap.contains(stored.as_ref()),
    }
}

/// `b` as a selection: nulls count as not selected.
fn selection(b: BooleanArray) -> BooleanArray {
    if b.null_count() > 0 { prep_null_mask_filter(&b) } else { b }
}

/// `a AND b` as a selection.
fn combine(a: Option<BooleanArray>, b: BooleanArray) -> Result<BooleanArray> {
    let b = selection(b);
    Ok(match a {
        Some(a) => and(&a, &b)?,
        None => b,
    })
}

/// The selection `mask` narrowed further by `keep`, which has one value per
/// row `mask` selects.
fn spread(mask: &BooleanArray, keep: &BooleanArray) -> BooleanArray {
    let mut bits = vec![false; mask.len()];
    let keep = selection(keep.clone());
    let selected = selection(mask.clone());
    for (j, row) in selected.values().set_indices().enumerate() {
        bits[row] = keep.value(j);
    }
    BooleanArray::new(BooleanBuffer::from(bits), None)
}

/// `offset op t` over a narrowed column (offsets from the chunk's base).
fn compare_offsets(stored: &ArrayRef, op: Operator, t: i128) -> Result<BooleanArray> {
    let max: i128 = match stored.data_type() {
        DataType::UInt8 => u8::MAX as i128,
        DataType::UInt16 => u16::MAX as i128,
        DataType::UInt32 => u32::MAX as i128,
        DataType::UInt64 => u64::MAX as i128,
        other => return Err(DataFusionError::Internal(format!("a narrowed column stored as {other}"))),
    };
    // Outcomes fixed by the offsets' range [0, max].
    let constant = match op {
        Operator::Gt if t < 0 => Some(true),
        Operator::Gt if t >= max => Some(false),
        Operator::GtEq if t <= 0 => Some(true),
        Operator::GtEq if t > max => Some(false),
        Operator::Lt if t <= 0 => Some(false),
        Operator::Lt if t > max => Some(true),
        Operator::LtEq if t < 0 => Some(false),
        Operator::LtEq if t >= max => Some(true),
        Operator::Eq if t < 0 || t > max => Some(false),
        Operator::NotEq if t < 0 || t > max => Some(true),
        _ => None,
    };
    if let Some(value) = constant {
        let values = if value { BooleanBuffer::new_set(stored.len()) } else { BooleanBuffer::new_unset(stored.len()) };
        return Ok(BooleanArray::new(values, stored.nulls().cloned()));
    }
    let values = match stored.data_type() {
        DataType::UInt8 => compare_values(stored.as_primitive::<UInt8Type>().values(), op, t as u8),
        DataType::UInt16 => compare_values(stored.as_primitive::<UInt16Type>().values(), op, t as u16),
        DataType::UInt32 => compare_values(stored.as_primitive::<UInt32Type>().values(), op, t as u32),
        _ => compare_values(stored.as_primitive::<UInt64Type>().values(), op, t as u64),
    };
    Ok(BooleanArray::new(values, stored.nulls().cloned()))
}

/// `v op t` for each value. Arrow's comparison kernels, built for the
/// baseline x86-64 instruction set, take about a nanosecond per value on
/// narrow integers; this form (a byte per comparison, then eight bytes
/// gathered into a byte of bits by one multiplication) is vectorised by
/// the compiler and several times faster.
fn compare_values<T: Copy + PartialOrd>(values: &[T], op: Operator, t: T) -> BooleanBuffer {
    match op {
        Operator::Eq => bits_where(values, |v| v == t),
        Operator::NotEq => bits_where(values, |v| v != t),
        Operator::Lt => bits_where(values, |v| v < t),
        Operator::LtEq => bits_where(values, |v| v <= t),
        Operator::Gt => bits_where(values, |v| v > t),
        _ => bits_where(values, |v| v >= t),
    }
}

fn bits_where<T: Copy>(values: &[T], f: impl Fn(T) -> bool) -> BooleanBuffer {
    let mut words: Vec<u64> = Vec::with_capacity(values.len().div_ceil(64));
    let mut bytes = [0u8; 64];
    for chunk in values.chunks(64) {
        for (b, v) in bytes.iter_mut().zip(chunk) {
            *b = u8::from(f(*v));
        }
        bytes[chunk.len()..].fill(0);
        let mut word = 0u64;
        for (k, eight) in bytes.chunks_exact(8).enumerate() {
            let x = u64::from_le_bytes(eight.try_into().expect("eight bytes"));
            // Byte i of x (0 or 1) lands on bit 56 + i of the product.
            word |= (x.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * k);
        }
        words.push(word);
    }
    BooleanBuffer::new(Buffer::from_vec(words), 0, values.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectorised comparisons give each row's own outcome, in Arrow's
    /// bit order, for lengths that are not a multiple of 64.
    #[test]
    fn compared_values_match_rows() {
        let values: Vec<u16> = (0..1000u32).map(|i| ((i * 7919) % 613) as u16).collect();
        let ops = [Operator::Eq, Operator::NotEq, Operator::Lt, Operator::LtEq, Operator::Gt, Operator::GtEq];
        for len in [0, 1, 63, 64, 65, 1000] {
            for op in ops {
                for t in [0u16, 17, 306, 612, 613] {
                    let got = compare_values(&values[..len], op, t);
                    assert_eq!(got.len(), len);
                    for (i, v) in values[..len].iter().enumerate() {
                        let want = match op {
                            Operator::Eq => *v == t,
                            Operator::NotEq => *v != t,
                            Operator::Lt => *v < t,
                            Operator::LtEq => *v <= t,
                            Operator::Gt => *v > t,
                            _ => *v >= t,
                        };
                        assert_eq!(got.value(i), want, "{op} {t} at row {i} of {len}");
                    }
                }
            }
        }
    }
}
