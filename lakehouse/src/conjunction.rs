//! Filters of several conditions evaluated condition by condition on the
//! rows still in play.
//!
//! DataFusion evaluates `a AND b` by evaluating `a`, and when few rows pass
//! it, `b` only on those: it copies every column of the batch for the
//! passing rows (not only the ones `b` reads), evaluates `b`, and spreads
//! `b`'s answers back over the batch one run of passing rows at a time, each
//! run a slice of an array and a builder call per value. When the passing
//! rows are scattered (a range of ship dates in `lineitem`, which is in
//! order-key order) the runs are a row or two long, and that spreading was
//! a fifth of TPC-H Q6 read in place.
//!
//! [`ConjunctionFilters`] gives each `FilterExec` with two or more
//! conditions a [`Conjunction`] predicate instead: the conditions in their
//! order, each on the rows all the earlier ones kept. A condition that
//! follows a selective one is evaluated on a copy of only the columns it
//! reads, for only the rows still kept, and its answers are put back in
//! place 64 rows at a time (one pass over the kept bits); after a
//! condition that kept most rows, the next one runs on the whole batch and
//! the two are combined bitwise. Only whole rows that pass every condition
//! pass (NULL counts as not passing, as in a filter), and the predicate
//! shows as it was in `EXPLAIN`.
//!
//! `LAKEWAVE_CONJUNCTION_FILTERS=off` in the server's environment turns the
//! rule off, for comparisons.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanArray, RecordBatch};
use datafusion::arrow::buffer::{BooleanBuffer, MutableBuffer};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::cast::as_boolean_array;
use datafusion::common::{internal_err, Result};
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::{collect_columns, split_conjunction};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::ExecutionPlan;

/// A condition kept by fewer than this share of the rows (in fifths) makes
/// the next one run on a copy of the kept rows; DataFusion's own threshold.
const SELECTIVE_FIFTHS: usize = 1;

#[derive(Debug, Default)]
pub struct ConjunctionFilters;

/// Puts [`ConjunctionFilters`] last but DataFusion's sanity check: filters
/// are final by then.
pub fn insert_rule(rules: &mut Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>>) {
    crate::insert_before_sanity_check(rules, Arc::new(ConjunctionFilters));
}

impl PhysicalOptimizerRule for ConjunctionFilters {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        if crate::switched_off("LAKEWAVE_CONJUNCTION_FILTERS") {
            return Ok(plan);
        }
        let rewritten = Arc::clone(&plan).transform_up(|node| {
            let Some(filter) = node.downcast_ref::<FilterExec>() else { return Ok(Transformed::no(node)) };
            let predicate = filter.predicate();
            if predicate.downcast_ref::<Conjunction>().is_some() || split_conjunction(predicate).len() < 2 {
                return Ok(Transformed::no(node));
            }
            let schema = filter.input().schema();
            let conjunction = Conjunction::try_new(Arc::clone(predicate), &schema)?;
            let new = crate::filter_with_predicate(filter, Arc::new(conjunction))?;
            Ok(Transformed::yes(Arc::new(new) as Arc<dyn ExecutionPlan>))
        })?;
        // The filter's predicate no longer tells the planner which columns
        // it fixes to constants; a parent whose order or partitioning
        // relied on that keeps the plan as it was.
        Ok(crate::if_still_valid(rewritten, plan, config))
    }

    fn name(&self) -> &str {
        "ConjunctionFilters"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// One condition of a [`Conjunction`].
#[derive(Debug)]
struct Part {
    /// On the filter's input.
    expr: Arc<dyn PhysicalExpr>,
    /// The input columns it reads, ascending.
    columns: Vec<usize>,
    /// The same condition on a batch of just `columns`.
    narrowed: Arc<dyn PhysicalExpr>,
}

/// A filter predicate: every condition true (see the module).
#[derive(Debug)]
pub struct Conjunction {
    /// The predicate as planned, for display.
    original: Arc<dyn PhysicalExpr>,
    parts: Vec<Part>,
}

// The parts are derived from the original predicate.
impl PartialEq for Conjunction {
    fn eq(&self, other: &Self) -> bool {
        self.original.eq(&other.original)
    }
}

impl Eq for Conjunction {}

impl Hash for Conjunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.original.hash(state);
    }
}

impl Conjunction {
    /// `original` split into its conditions, checked against the filter's
    /// input `schema`.
    pub fn try_new(original: Arc<dyn PhysicalExpr>, schema: &Schema) -> Result<Self> {
        let conjunction = Self::of(original)?;
        let width = schema.fields().len();
        if let Some(p) = conjunction.parts.iter().find(|p| p.columns.last().is_some_and(|&i| i >= width)) {
            return internal_err!("filter condition {} reads a column past the {width} of its input", p.expr);
        }
        Ok(conjunction)
    }

    fn of(original: Arc<dyn PhysicalExpr>) -> Result<Self> {
        let parts = split_conjunction(&original).into_iter().map(|e| part(Arc::clone(e))).collect::<Result<Vec<_>>>()?;
        Ok(Self { original, parts })
    }
}

fn part(expr: Arc<dyn PhysicalExpr>) -> Result<Part> {
    let mut columns: Vec<usize> = collect_columns(&expr).iter().map(Column::index).collect();
    columns.sort_unstable();
    columns.dedup();
    let narrowed = Arc::clone(&expr)
        .transform(|e| {
            let Some(c) = e.downcast_ref::<Column>() else { return Ok(Transformed::no(e)) };
            let at = columns.binary_search(&c.index()).expect("collected above");
            Ok(Transformed::yes(Arc::new(Column::new(c.name(), at)) as Arc<dyn PhysicalExpr>))
        })?
        .data;
    Ok(Part { expr, columns, narrowed })
}

impl fmt::Display for Conjunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.original)
    }
}

/// The rows where `value` is true (NULL is not).
fn passing(value: ColumnarValue, rows: usize) -> Result<BooleanBuffer> {
    let array = value.into_array(rows)?;
    let b = as_boolean_array(&array)?;
    Ok(match b.nulls() {
        Some(nulls) => b.values() & nulls.inner(),
        None => b.values().clone(),
    })
}

impl PhysicalExpr for Conjunction {
    fn data_type(&self, _input_schema: &Schema) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn nullable(&self, _input_schema: &Schema) -> Result<bool> {
        Ok(false)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        let rows = batch.num_rows();
        let mut kept = passing(self.parts[0].expr.evaluate(batch)?, rows)?;
        for part in &self.parts[1..] {
            let count = kept.count_set_bits();
            if count == 0 {
                break;
            }
            if part.columns.is_empty() || count * 5 > rows * SELECTIVE_FIFTHS {
                kept = &kept & &passing(part.expr.evaluate(batch)?, rows)?;
            } else {
                let narrow = batch.project(&part.columns)?;
                let selected = filter_record_batch(&narrow, &BooleanArray::new(kept.clone(), None))?;
                let answers = passing(part.narrowed.evaluate(&selected)?, count)?;
                kept = deposit(&kept, &answers);
            }
        }
        Ok(ColumnarValue::Array(Arc::new(BooleanArray::new(kept, None))))
    }

    /// The predicate as planned (its conditions are split from it again).
    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.original]
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn PhysicalExpr>>) -> Result<Arc<dyn PhysicalExpr>> {
        let [original]: [Arc<dyn PhysicalExpr>; 1] = children
            .try_into()
            .map_err(|c: Vec<_>| datafusion::common::DataFusionError::Internal(format!("a conjunction given {} children", c.len())))?;
        Ok(Arc::new(Self::of(original)?))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.original.fmt_sql(f)
    }
}

/// `kept` with its set bits replaced, in order, by the bits of `answers`
/// (which has one bit per set bit of `kept`).
fn deposit(kept: &BooleanBuffer, answers: &BooleanBuffer) -> BooleanBuffer {
    let len = kept.len();
    let mut out = MutableBuffer::new(len.div_ceil(64) * 8);
    let mut source = answers.bit_chunks().iter_padded();
    let mut pending: u128 = 0;
    let mut have: u32 = 0;
    for word in kept.bit_chunks().iter_padded() {
        let k = word.count_ones();
        if have < k {
            pending |= u128::from(source.next().unwrap_or(0)) << have;
            have += 64;
        }
        let bits = if k == 64 { pending as u64 } else { (pending as u64) & ((1u64 << k) - 1) };
        pending >>= k;
        have -= k;
        out.push(deposit_bits(bits, word));
    }
    BooleanBuffer::new(out.into(), 0, len)
}

/// The low bits of `bits` placed, in order, at the set bits of `mask`
/// (a loop over the set bits: few after a selective condition).
#[inline]
fn deposit_bits(mut bits: u64, mut mask: u64) -> u64 {
    if mask == u64::MAX {
        return bits;
    }
    let mut out = 0u64;
    while mask != 0 {
        let lowest = mask & mask.wrapping_neg();
        out |= lowest & (bits & 1).wrapping_neg();
        bits >>= 1;
        mask &= mask - 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::{SessionConfig, SessionContext};

    #[test]
    fn deposits_bits_in_order() {
        let kept = BooleanBuffer::from_iter((0..200).map(|i| i % 3 == 0 || i > 150));
        let n = kept.count_set_bits();
        let answers = BooleanBuffer::from_iter((0..n).map(|j| j % 2 == 1));
        let got = deposit(&kept, &answers);
        let mut j = 0;
        for i in 0..200 {
            let want = if kept.value(i) {
                j += 1;
                (j - 1) % 2 == 1
            } else {
                false
            };
            assert_eq!(got.value(i), want, "row {i}");
        }
        // Sliced inputs (offsets not on a word).
        let sliced = kept.slice(5, 120);
        let n = sliced.count_set_bits();
        let got = deposit(&sliced, &BooleanBuffer::new_set(n));
        assert_eq!(got, sliced);
    }

    /// Filters of several conditions keep the same rows with the rule on:
    /// selective and unselective first conditions, NULLs in conditions, a
    /// condition that would fail on rows an earlier one drops, constants,
    /// projections of the filter's output.
    #[tokio::test]
    async fn same_rows_as_datafusion() -> Result<()> {
        let config = SessionConfig::new().with_target_partitions(2).with_batch_size(1000);
        let ctx = SessionContext::new_with_config(config);
        ctx.sql(
            "CREATE TABLE t AS SELECT v, v % 97 AS a, CASE WHEN v % 7 = 0 THEN NULL ELSE v % 13 END AS b, \
                    CAST(v % 11 AS VARCHAR) AS s, arrow_cast(v % 5, 'Decimal128(10, 2)') AS d \
             FROM generate_series(1, 20000) AS g(v)",
        )
        .await?
        .collect()
        .await?;
        let queries = [
            "SELECT v, b FROM t WHERE a = 3 AND b > 4 AND s <> '2' ORDER BY v",
            "SELECT count(*), sum(v) FROM t WHERE a < 90 AND b < 6",
            "SELECT v FROM t WHERE a = 1 AND 100 / (a - 1 + 1) > 3 AND d >= 1 ORDER BY v",
            "SELECT v FROM t WHERE b IS NULL AND a BETWEEN 10 AND 12 AND v > 100 ORDER BY v",
            "SELECT count(*) FROM t WHERE a = 5 AND b = 99",
            "SELECT s, count(*) FROM t WHERE v % 2 = 0 AND s IN ('1', '3') AND b <> 0 GROUP BY s ORDER BY s",
        ];
        for q in queries {
            let df = ctx.sql(q).await?;
            let expected = df.clone().collect().await?;
            let plan = df.create_physical_plan().await?;
            let before = displayable(plan.as_ref()).indent(false).to_string();
            let plan = ConjunctionFilters.optimize(plan, &ConfigOptions::default())?;
            assert_eq!(displayable(plan.as_ref()).indent(false).to_string(), before, "{q}: shown as before");
            let mut found = false;
            plan.apply(|n| {
                if let Some(f) = n.downcast_ref::<FilterExec>() {
                    if let Some(c) = f.predicate().downcast_ref::<Conjunction>() {
                        found = true;
                        // Rebuilt from its children, it is the same predicate.
                        let children = f.predicate().children().into_iter().cloned().collect();
                        let rebuilt = Arc::clone(f.predicate()).with_new_children(children)?;
                        assert_eq!(rebuilt.downcast_ref::<Conjunction>().map(|r| r.parts.len()), Some(c.parts.len()), "{q}");
                        assert_eq!(rebuilt.to_string(), f.predicate().to_string(), "{q}");
                    }
                }
                Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
            })?;
            assert!(found, "{q}: no conjunction in {before}");
            let got = datafusion::physical_plan::collect(plan, ctx.task_ctx()).await?;
            assert_eq!(pretty_format_batches(&got)?.to_string(), pretty_format_batches(&expected)?.to_string(), "{q}");
        }
        Ok(())
    }
}
