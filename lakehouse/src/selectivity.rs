//! Row estimates of filters with several conditions.
//!
//! DataFusion estimates a filter's rows by interval analysis of its
//! predicate, but only when every condition of it can be analysed: one
//! condition it cannot analyse (an `IN` list, a condition on a text or
//! DECIMAL column, `IS NOT NULL`) and the whole filter is given the default
//! selectivity, 20%. TPC-H Q12's filter on `lineitem` keeps 0.5% of the
//! rows (a year of receipt dates, two comparisons of dates, two ship
//! modes); the ship modes are text, so it was estimated to keep 20%, and
//! the join above it hashed the 1.5M orders to probe them with 1.2M
//! estimated rows, where building on the 31K real ones is the better plan.
//!
//! Here the conditions DataFusion can analyse are analysed together, and
//! the others count once at the default selectivity (so a run of
//! `x IS NOT NULL AND y IS NOT NULL ...` is not taken as ever more
//! selective): the filter keeps the product of the two fractions. The
//! [`ConjunctSelectivity`] rule gives filters that estimate before join
//! selection reads it; the loaded copies' scans estimate their filters the
//! same way (`rapid::scan`).

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Result, Statistics};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::intervals::utils::check_support;
use datafusion::physical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, InListExpr, Literal};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
use datafusion::physical_plan::test::exec::StatisticsExec;
use datafusion::physical_plan::ExecutionPlan;

/// Whether conditions are estimated one by one
/// (`LAKEWAVE_CONJUNCT_SELECTIVITY=off` in the server's environment turns
/// it off, for comparisons).
fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| !crate::switched_off("LAKEWAVE_CONJUNCT_SELECTIVITY"))
}

/// The fraction of rows with statistics `input` (of `schema`) that the
/// conditions keep: the conditions DataFusion can analyse, analysed
/// together; times, for each equality or `IN` list on a column with a
/// known number of distinct values, its values' share of them; times the
/// default selectivity once for all the others (so a run of
/// `x IS NOT NULL AND y IS NOT NULL ...` is not taken as ever more
/// selective). None when DataFusion analyses every condition (it then
/// estimates the filter as a whole itself), when the input's row count is
/// unknown or zero, or when the analysis fails.
pub fn conjunct_fraction(
    schema: &SchemaRef,
    input: &Statistics,
    conditions: &[Arc<dyn PhysicalExpr>],
    default_selectivity: u8,
) -> Result<Option<f64>> {
    let Some(&rows) = input.num_rows.get_value() else { return Ok(None) };
    if rows == 0 || !enabled() || input.column_statistics.len() != schema.fields().len() {
        return Ok(None);
    }
    let (analysable, rest): (Vec<_>, Vec<_>) = conditions.iter().cloned().partition(|c| check_support(c, schema));
    if rest.is_empty() {
        return Ok(None);
    }
    let mut fraction = 1.0;
    let mut others = false;
    for condition in &rest {
        match counted_fraction(condition, input) {
            Some(f) => fraction *= f,
            None => others = true,
        }
    }
    if others {
        fraction *= f64::from(default_selectivity.min(100)) / 100.0;
    }
    if !analysable.is_empty() {
        let source: Arc<dyn ExecutionPlan> = Arc::new(StatisticsExec::new(input.clone(), schema.as_ref().clone()));
        let estimate = FilterExec::try_new(conjunction(analysable), source)
            .and_then(|f| f.with_default_selectivity(default_selectivity))
            .and_then(|f| StatisticsContext::new().compute(&f, &StatisticsArgs::new()));
        // An analysis DataFusion never ran before (its whole filter was
        // beyond it) must not fail the query: no estimate then.
        let Ok(estimate) = estimate else { return Ok(None) };
        let kept = estimate.num_rows.get_value().copied().unwrap_or(rows);
        fraction *= (kept as f64 / rows as f64).clamp(0.0, 1.0);
    }
    Ok(Some(fraction))
}

/// The column and number of values of `condition` when it is
/// `column = value` (either way round) or `column IN (values)`, values
/// being literals (casts aside).
fn equality(condition: &Arc<dyn PhysicalExpr>) -> Option<(usize, usize)> {
    use crate::uncast;
    let literal = |e: &Arc<dyn PhysicalExpr>| uncast(e).downcast_ref::<Literal>().is_some_and(|l| !l.value().is_null());
    let column = |e: &Arc<dyn PhysicalExpr>| uncast(e).downcast_ref::<Column>().map(Column::index);
    if let Some(b) = condition.downcast_ref::<BinaryExpr>() {
        if *b.op() != Operator::Eq {
            return None;
        }
        return match (column(b.left()), column(b.right())) {
            (Some(c), None) if literal(b.right()) => Some((c, 1)),
            (None, Some(c)) if literal(b.left()) => Some((c, 1)),
            _ => None,
        };
    }
    let list = condition.downcast_ref::<InListExpr>()?;
    if list.negated() || list.list().is_empty() || !list.list().iter().all(literal) {
        return None;
    }
    Some((column(list.expr())?, list.list().len()))
}

/// The fraction of rows with statistics `input` that an equality or `IN`
/// list keeps when its column's number of distinct values is known: its
/// values' share of them.
fn counted_fraction(condition: &Arc<dyn PhysicalExpr>, input: &Statistics) -> Option<f64> {
    let (column, values) = equality(condition)?;
    let distinct = *input.column_statistics.get(column)?.distinct_count.get_value()?;
    (distinct > 0).then(|| (values as f64 / distinct as f64).min(1.0))
}

/// `estimate` (a filter's statistics) with its row count and size lowered
/// to `fraction` of `input_rows` when that is lower; null and distinct
/// counts are capped at the new row count.
pub fn lower_to(mut estimate: Statistics, input_rows: usize, fraction: f64) -> Statistics {
    let rows = ((input_rows as f64) * fraction).ceil() as usize;
    let Some(&current) = estimate.num_rows.get_value() else { return estimate };
    if rows >= current {
        return estimate;
    }
    if let Some(&bytes) = estimate.total_byte_size.get_value() {
        let scaled = if current == 0 { 0 } else { (bytes as f64 * rows as f64 / current as f64).ceil() as usize };
        estimate.total_byte_size = Precision::Inexact(scaled);
    }
    estimate.num_rows = Precision::Inexact(rows);
    for column in &mut estimate.column_statistics {
        for count in [&mut column.null_count, &mut column.distinct_count] {
            if let Some(&n) = count.get_value()
                && n > rows
            {
                *count = Precision::Inexact(rows);
            }
        }
    }
    estimate
}

/// Gives filters that DataFusion cannot analyse as a whole the estimate of
/// their conditions taken one by one. It runs before join selection.
#[derive(Debug, Default)]
pub struct ConjunctSelectivity;

impl PhysicalOptimizerRule for ConjunctSelectivity {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        if !enabled() {
            return Ok(plan);
        }
        plan.transform_up(|node| {
            let Some(filter) = node.downcast_ref::<FilterExec>() else { return Ok(Transformed::no(node)) };
            match retuned(filter)? {
                Some(new) => Ok(Transformed::yes(Arc::new(new) as Arc<dyn ExecutionPlan>)),
                None => Ok(Transformed::no(node)),
            }
        })
        .data()
    }

    fn name(&self) -> &str {
        "lakewave_conjunct_selectivity"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The filter with a default selectivity that makes its estimate the
/// product of its conditions', when DataFusion estimated it with the
/// default and the product is lower. DataFusion's selectivity is a whole
/// percentage, so the product is rounded to one, and at least 1%.
fn retuned(filter: &FilterExec) -> Result<Option<FilterExec>> {
    let conditions: Vec<Arc<dyn PhysicalExpr>> = split_conjunction(filter.predicate()).into_iter().cloned().collect();
    // One condition is estimated at the default unless a count of
    // distinct values may estimate it.
    if conditions.len() < 2 && !conditions.first().is_some_and(|c| equality(c).is_some()) {
        return Ok(None);
    }
    // A filter DataFusion can analyse as a whole has its conditions'
    // intervals combined already (checked here too, before the input's
    // statistics are worked out for nothing).
    let schema = filter.input().schema();
    if check_support(filter.predicate(), &schema) {
        return Ok(None);
    }
    let Ok(input) = StatisticsContext::new().compute(filter.input().as_ref(), &StatisticsArgs::new()) else { return Ok(None) };
    let default = filter.default_selectivity();
    let Some(fraction) = conjunct_fraction(&schema, &input, &conditions, default)? else {
        return Ok(None);
    };
    let percent = ((fraction * 100.0).round() as u8).clamp(1, 100);
    if percent >= default {
        return Ok(None);
    }
    Ok(Some(filter.clone().with_default_selectivity(percent)?))
}

/// Puts [`ConjunctSelectivity`] right before DataFusion's join selection.
pub fn insert_rule(rules: &mut Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>>) {
    match rules.iter().position(|r| r.name() == "join_selection") {
        Some(i) => rules.insert(i, Arc::new(ConjunctSelectivity)),
        None => tracing::warn!("DataFusion's join selection was not found; filters keep DataFusion's estimates"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::{ColumnStatistics, ScalarValue};
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{binary, col, in_list, lit};

    fn rows_of(plan: &dyn ExecutionPlan) -> usize {
        *StatisticsContext::new().compute(plan, &StatisticsArgs::new()).unwrap().num_rows.get_value().unwrap()
    }

    #[test]
    fn conditions_beyond_analysis_are_estimated_one_by_one() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false), Field::new("b", DataType::Int64, false)]));
        let mut a = ColumnStatistics::new_unknown();
        a.min_value = Precision::Inexact(ScalarValue::Int64(Some(0)));
        a.max_value = Precision::Inexact(ScalarValue::Int64(Some(99)));
        let stats = Statistics {
            num_rows: Precision::Exact(1000),
            total_byte_size: Precision::Exact(16_000),
            column_statistics: vec![a, ColumnStatistics::new_unknown()],
        };
        let input: Arc<dyn ExecutionPlan> = Arc::new(StatisticsExec::new(stats, schema.as_ref().clone()));
        // `a < 10` keeps about 10% by its bounds; an IN list has no analysis.
        let range = binary(col("a", &schema).unwrap(), Operator::Lt, lit(10i64), &schema).unwrap();
        let list = in_list(col("b", &schema).unwrap(), vec![lit(1i64), lit(2i64)], &false, &schema).unwrap();
        let both = binary(Arc::clone(&range), Operator::And, list, &schema).unwrap();
        let filter: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(both, Arc::clone(&input)).unwrap());
        // DataFusion alone: the default 20% for the whole filter.
        assert_eq!(rows_of(filter.as_ref()), 200);
        let tuned = ConjunctSelectivity.optimize(Arc::clone(&filter), &ConfigOptions::default()).unwrap();
        let kept = rows_of(tuned.as_ref());
        assert!((15..=25).contains(&kept), "10% of 20% of 1000 rows, not {kept}");
        // Conditions beyond analysis count once, however many there are.
        let lists = (1..4i64)
            .map(|n| in_list(col("b", &schema).unwrap(), (0..n).map(lit).collect(), &false, &schema).unwrap())
            .reduce(|a, b| binary(a, Operator::And, b, &schema).unwrap())
            .unwrap();
        let lists: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(lists, Arc::clone(&input)).unwrap());
        let same = ConjunctSelectivity.optimize(lists, &ConfigOptions::default()).unwrap();
        assert_eq!(rows_of(same.as_ref()), 200);
        // A filter DataFusion analyses as a whole is left alone.
        let analysed: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(range, input).unwrap());
        let same = ConjunctSelectivity.optimize(Arc::clone(&analysed), &ConfigOptions::default()).unwrap();
        assert_eq!(rows_of(same.as_ref()), rows_of(analysed.as_ref()));
    }

    #[test]
    fn equalities_on_counted_columns_keep_their_share_of_the_values() {
        use datafusion::physical_expr::expressions::cast;
        let schema = Arc::new(Schema::new(vec![
            Field::new("kind", DataType::Utf8, false),
            Field::new("mode", DataType::Utf8, false),
            Field::new("name", DataType::Utf8, false),
        ]));
        let counted = |n: usize| ColumnStatistics::new_unknown().with_distinct_count(Precision::Inexact(n));
        let stats = Statistics {
            num_rows: Precision::Exact(10_000),
            total_byte_size: Precision::Absent,
            column_statistics: vec![counted(50), counted(4), ColumnStatistics::new_unknown()],
        };
        let input: Arc<dyn ExecutionPlan> = Arc::new(StatisticsExec::new(stats, schema.as_ref().clone()));
        let tuned = |predicate: Arc<dyn PhysicalExpr>| {
            let filter: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(predicate, Arc::clone(&input)).unwrap());
            rows_of(ConjunctSelectivity.optimize(filter, &ConfigOptions::default()).unwrap().as_ref())
        };
        let column = |name: &str| col(name, &schema).unwrap();
        let text = |v: &str| lit(v.to_string());
        // One condition alone: a value in 50 (2%), either way round, through
        // a cast.
        let kind = binary(column("kind"), Operator::Eq, text("a"), &schema).unwrap();
        assert_eq!(tuned(Arc::clone(&kind)), 200);
        assert_eq!(tuned(binary(text("a"), Operator::Eq, column("kind"), &schema).unwrap()), 200);
        let cast_kind = cast(column("kind"), &schema, DataType::LargeUtf8).unwrap();
        assert_eq!(tuned(binary(cast_kind, Operator::Eq, lit(ScalarValue::LargeUtf8(Some("a".into()))), &schema).unwrap()), 200);
        // Two kinds of 50: 4%.
        assert_eq!(tuned(in_list(column("kind"), vec![text("a"), text("b")], &false, &schema).unwrap()), 400);
        // Two of four modes would be half: estimates are only lowered, it
        // stays at the default.
        let modes = in_list(column("mode"), vec![text("AIR"), text("MAIL")], &false, &schema).unwrap();
        assert_eq!(tuned(Arc::clone(&modes)), 2_000);
        // With one kind: 2% of half, 1%.
        assert_eq!(tuned(binary(Arc::clone(&kind), Operator::And, modes, &schema).unwrap()), 100);
        // An uncounted column, a negated list or an inequality: the default,
        // counted once with the counted ones.
        let name = binary(column("name"), Operator::Eq, text("x"), &schema).unwrap();
        assert_eq!(tuned(Arc::clone(&name)), 2_000);
        let not_modes = in_list(column("mode"), vec![text("AIR")], &true, &schema).unwrap();
        assert_eq!(tuned(not_modes), 2_000);
        assert_eq!(tuned(binary(column("kind"), Operator::NotEq, text("a"), &schema).unwrap()), 2_000);
        // 2% of 20% is 0.4%, estimated at the lowest whole percentage.
        assert_eq!(tuned(binary(kind, Operator::And, name, &schema).unwrap()), 100);
    }
}
