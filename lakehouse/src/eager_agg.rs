//! Aggregation below a join ("eager aggregation").
//!
//! A lake table of readings joined with a small table of machines and
//! grouped by the machines' attributes (`GROUP BY a.site, s.day` over
//! `sensors s JOIN assets a ON a.asset_id = s.asset_id`) joins every
//! reading, copies the machine's text into each of the 10M joined rows,
//! and then hashes that text to group them. Grouped first by the join key
//! and the reading's own group columns (`s.asset_id, s.day`: 350 groups),
//! the readings reach the join as 350 rows of partial sums, and the
//! aggregation above the join merges those partial states instead of
//! aggregating raw rows.
//!
//! [`EagerAggregation`] finds a partial aggregation directly over an inner
//! hash join whose build side is collected whole (the small side), when
//! every aggregate reads only the probe side's columns and each grouping
//! expression reads one side only. It puts a partial aggregation of the
//! same aggregates on the probe side, grouped by the probe's join keys and
//! its own grouping expressions, and turns the aggregation above the join
//! into one that merges states (DataFusion's `PartialReduce`); the final
//! aggregation above is unchanged. Every decomposable aggregate is correct
//! this way: a partial state joined to m build rows is merged m times, as
//! each of its rows would have been aggregated m times.
//!
//! It pays only when the grouping on the probe side reduces the rows a lot,
//! so it applies when the statistics bound the distinct values of those
//! grouping columns to at most 1/[`MIN_REDUCTION`] of the probe rows: a
//! column's distinct count, the range of an integer or date column's
//! bounds, or for a Hive partition column the partition values of the
//! files read. (A partial aggregation whose groups turn out to be nearly
//! as many as its rows also passes its rows on as states after a probe,
//! DataFusion's `skip_partial_aggregation`.)
//! `LAKEWAVE_EAGER_AGGREGATION=off` in the server's environment turns the
//! rule off, for comparisons.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{JoinType, Result, ScalarValue, Statistics};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr_common::physical_expr::is_volatile;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode, PhysicalGroupBy};
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::ExecutionPlan;

/// How many probe rows per estimated group the probe side must have.
pub const MIN_REDUCTION: u64 = 8;

/// Rewrites aggregations over joins as described in the module.
#[derive(Debug, Default)]
pub struct EagerAggregation;

impl PhysicalOptimizerRule for EagerAggregation {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        if crate::switched_off("LAKEWAVE_EAGER_AGGREGATION") {
            return Ok(plan);
        }
        plan.transform_up(|node| {
            let Some(upper) = node.downcast_ref::<AggregateExec>() else { return Ok(Transformed::no(node)) };
            if !matches!(upper.mode(), AggregateMode::Final | AggregateMode::FinalPartitioned) {
                return Ok(Transformed::no(node));
            }
            let Some(partial) = upper.input().downcast_ref::<AggregateExec>() else { return Ok(Transformed::no(node)) };
            let rewritten = match below_join(partial)? {
                Some(reduce) => Some(reduce),
                None => match inlined(partial)? {
                    Some((top, groups, args)) => crate::agg_reorder::reassociate(partial, &top, &groups, &args)?,
                    None => None,
                },
            };
            match rewritten {
                Some(reduce) => {
                    let options = ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute);
                    Ok(Transformed::yes(Arc::clone(&node).replace_children(vec![reduce], options)?))
                }
                None => Ok(Transformed::no(node)),
            }
        })
        .data()
    }

    fn name(&self) -> &str {
        "lakewave_eager_aggregation"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Puts [`EagerAggregation`] right after the rule that chooses collected
/// joins (it looks for them), before repartitions are placed.
pub fn insert_rule(rules: &mut Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>>) {
    let at = rules
        .iter()
        .position(|r| r.name() == "lakewave_collect_small_builds")
        .or_else(|| rules.iter().position(|r| r.name() == "join_selection"));
    match at {
        Some(i) => rules.insert(i + 1, Arc::new(EagerAggregation)),
        None => tracing::warn!("DataFusion's join selection was not found; aggregations stay above joins"),
    }
}

/// Which side of the join an expression's columns come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// No columns (a constant).
    Neither,
    Build,
    Probe,
    Both,
}

/// The join below `partial` (through projections), with the
/// aggregation moved to its probe side: the state-merging aggregation that
/// replaces `partial`. None when the plan does not have that shape or the
/// statistics do not promise a reduction.
fn below_join(partial: &AggregateExec) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    // The join, and the partial's expressions over the join's output.
    let Some((input, groups, args)) = inlined(partial)? else { return Ok(None) };
    let Some(join) = input.downcast_ref::<HashJoinExec>() else { return Ok(None) };
    if *join.join_type() != JoinType::Inner
        || *join.partition_mode() != PartitionMode::CollectLeft
        || join.filter().is_some()
        || join.null_aware
        || join.fetch().is_some()
    {
        return Ok(None);
    }

    // Output column of the join -> (side, column of that side's schema).
    let left_len = join.left().schema().fields().len();
    let output: Vec<usize> = match &join.projection {
        Some(p) => p.iter().copied().collect(),
        None => (0..join.join_schema().fields().len()).collect(),
    };
    let side_of = |i: usize| if output[i] < left_len { (Side::Build, output[i]) } else { (Side::Probe, output[i] - left_len) };
    let side = |e: &Arc<dyn PhysicalExpr>| -> Side {
        let mut seen = Side::Neither;
        let _ = Arc::clone(e).apply(|x| {
            if let Some(c) = x.downcast_ref::<Column>() {
                let s = side_of(c.index()).0;
                seen = if seen == Side::Neither || seen == s { s } else { Side::Both };
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        });
        seen
    };
    // `e` (over the join's output) over one side's own schema.
    let onto_side = |e: &Arc<dyn PhysicalExpr>| -> Result<Arc<dyn PhysicalExpr>> {
        Arc::clone(e)
            .transform_up(|x| match x.downcast_ref::<Column>() {
                Some(c) => Ok(Transformed::yes(Arc::new(Column::new(c.name(), side_of(c.index()).1)) as _)),
                None => Ok(Transformed::no(x)),
            })
            .data()
    };

    // Every aggregate reads the probe side only.
    let mut aggregates = Vec::with_capacity(partial.aggr_expr().len());
    for (agg, agg_args) in partial.aggr_expr().iter().zip(&args) {
        let mut moved_args = Vec::new();
        for arg in agg_args {
            if !matches!(side(arg), Side::Probe | Side::Neither) {
                return Ok(None);
            }
            moved_args.push(onto_side(arg)?);
        }
        let Some(moved) = agg.with_new_expressions(moved_args, vec![]) else { return Ok(None) };
        aggregates.push(Arc::new(moved));
    }
    // Grouping expressions: the probe side's are computed below the join,
    // the build side's (and constants) above it.
    let group_sides: Vec<Side> = groups.iter().map(|(e, _)| side(e)).collect();
    if group_sides.contains(&Side::Both) {
        return Ok(None);
    }
    let mut probe_groups = Vec::new();
    for ((e, _), s) in groups.iter().zip(&group_sides) {
        if *s == Side::Probe {
            probe_groups.push(onto_side(e)?);
        }
    }

    // The probe side's grouping: its join keys, then its group columns,
    // under names of their own. DataFusion passes a filter on an
    // aggregation's group columns to its input by name: named as the probe
    // columns, the join's runtime filter reached the scan below, and the
    // samples join took 1.18x the time in place (testing keys on decoded
    // rows and copying the rows kept cost more than aggregating the rows
    // dropped) and 1.13x on the loaded copies.
    let probe = join.right();
    let keys: Vec<Arc<dyn PhysicalExpr>> = join.on().iter().map(|(_, r)| Arc::clone(r)).collect();
    let mut below: Vec<(Arc<dyn PhysicalExpr>, String)> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        below.push((Arc::clone(k), format!("__lakewave_key{i}")));
    }
    for (i, g) in probe_groups.iter().enumerate() {
        below.push((Arc::clone(g), format!("__lakewave_group{i}")));
    }
    if !reduces(probe, below.iter().map(|(e, _)| e))? {
        return Ok(None);
    }
    let pre = Arc::new(AggregateExec::try_new(
        AggregateMode::Partial,
        PhysicalGroupBy::new_single(below.clone()),
        aggregates,
        vec![None; partial.aggr_expr().len()],
        Arc::clone(probe),
        probe.schema(),
    )?);

    // The join on the grouped keys: build columns, then the pre-aggregated
    // keys, groups and states.
    let on = join
        .on()
        .iter()
        .enumerate()
        .map(|(i, (l, _))| (Arc::clone(l), Arc::new(Column::new(&below[i].1, i)) as Arc<dyn PhysicalExpr>))
        .collect();
    let joined = Arc::new(HashJoinExec::try_new(
        Arc::clone(join.left()),
        pre,
        on,
        None,
        &JoinType::Inner,
        None,
        PartitionMode::CollectLeft,
        join.null_equality(),
        false,
    )?);
    let joined_schema = joined.schema();

    // The grouping values and states in the layout the partial had: its
    // group columns, then each aggregate's state fields.
    let grouped_at = left_len + keys.len();
    let mut exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = Vec::new();
    let mut next_probe_group = 0;
    for ((e, name), s) in groups.iter().zip(&group_sides) {
        let expr = match s {
            Side::Probe => {
                let at = grouped_at + next_probe_group;
                next_probe_group += 1;
                Arc::new(Column::new(joined_schema.field(at).name(), at)) as Arc<dyn PhysicalExpr>
            }
            // Build columns keep their place: the build side comes first.
            _ => onto_side(e)?,
        };
        exprs.push((expr, name.clone()));
    }
    let states_at = grouped_at + probe_groups.len();
    let partial_schema = partial.schema();
    for (i, field) in partial_schema.fields().iter().enumerate().skip(groups.len()) {
        let at = states_at + i - groups.len();
        if joined_schema.field(at).data_type() != field.data_type() {
            return Ok(None);
        }
        exprs.push((Arc::new(Column::new(joined_schema.field(at).name(), at)), field.name().clone()));
    }
    merging(partial, exprs, joined)
}

/// The aggregation that replaces `partial`: over `input`, `exprs` lays out
/// the partial's grouping values and its aggregates' states, which the
/// returned aggregation merges (`PartialReduce`). None when the states
/// would not come out as the partial's did, for the final above.
pub(crate) fn merging(
    partial: &AggregateExec,
    exprs: Vec<(Arc<dyn PhysicalExpr>, String)>,
    input: Arc<dyn ExecutionPlan>,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let partial_schema = partial.schema();
    if exprs.len() != partial_schema.fields().len() {
        return Ok(None);
    }
    let layout = Arc::new(ProjectionExec::try_new(exprs, input)?);
    let reduce = AggregateExec::try_new(
        AggregateMode::PartialReduce,
        partial.group_expr().as_final(),
        partial.aggr_expr().to_vec(),
        vec![None; partial.aggr_expr().len()],
        layout,
        partial.input_schema(),
    )?;
    let same = reduce.schema().fields().iter().zip(partial_schema.fields()).all(|(a, b)| a.data_type() == b.data_type());
    if !same || reduce.schema().fields().len() != partial_schema.fields().len() {
        return Ok(None);
    }
    Ok(Some(Arc::new(reduce)))
}

/// The input of `partial` below its projections, and the partial's
/// grouping expressions and aggregate arguments over that input (the
/// projections inlined); None when `partial` is not a plain partial
/// aggregation or a projection computes a volatile value.
#[allow(clippy::type_complexity)]
fn inlined(
    partial: &AggregateExec,
) -> Result<Option<(Arc<dyn ExecutionPlan>, Vec<(Arc<dyn PhysicalExpr>, String)>, Vec<Vec<Arc<dyn PhysicalExpr>>>)>> {
    if *partial.mode() != AggregateMode::Partial
        || !partial.group_expr().is_single()
        || partial.group_expr().expr().is_empty()
        || partial.limit_options().is_some()
        || partial.filter_expr().iter().any(Option::is_some)
        || partial.aggr_expr().iter().any(|a| a.is_distinct() || !a.order_bys().is_empty())
    {
        return Ok(None);
    }
    let mut input = Arc::clone(partial.input());
    let mut projections = Vec::new();
    while let Some(p) = input.downcast_ref::<ProjectionExec>().cloned() {
        // A volatile value (`random()`) inlined where it is read twice
        // would become two values.
        if p.expr().iter().any(|e| is_volatile(&e.expr)) {
            return Ok(None);
        }
        input = Arc::clone(p.input());
        projections.push(p);
    }
    let inline = |e: &Arc<dyn PhysicalExpr>| -> Result<Arc<dyn PhysicalExpr>> {
        let mut e = Arc::clone(e);
        for p in &projections {
            e = e
                .transform_up(|x| match x.downcast_ref::<Column>() {
                    Some(c) => Ok(Transformed::yes(Arc::clone(&p.expr()[c.index()].expr))),
                    None => Ok(Transformed::no(x)),
                })
                .data()?;
        }
        Ok(e)
    };
    let groups = partial.group_expr().expr().iter().map(|(e, name)| Ok((inline(e)?, name.clone()))).collect::<Result<_>>()?;
    let args = partial
        .aggr_expr()
        .iter()
        .map(|a| a.expressions().iter().map(&inline).collect::<Result<Vec<_>>>())
        .collect::<Result<_>>()?;
    Ok(Some((input, groups, args)))
}

/// Whether grouping `plan`'s rows by `exprs` is known to leave at most
/// 1/[`MIN_REDUCTION`] of them.
fn reduces<'a>(plan: &Arc<dyn ExecutionPlan>, exprs: impl Iterator<Item = &'a Arc<dyn PhysicalExpr>>) -> Result<bool> {
    let Ok(stats) = StatisticsContext::new().compute(plan.as_ref(), &StatisticsArgs::new()) else { return Ok(false) };
    let Some(rows) = stats.num_rows.get_value().map(|r| *r as u64) else { return Ok(false) };
    let mut groups: u64 = 1;
    for e in exprs {
        let Some(n) = distinct_bound(plan, &stats, e) else { return Ok(false) };
        groups = groups.saturating_mul(n);
    }
    Ok(groups.saturating_mul(MIN_REDUCTION) <= rows)
}

/// An upper bound on the distinct values of `expr` over `plan`'s rows
/// (NULL counted as one), from `stats` (`plan`'s) or the partition values
/// of the files a scan reads.
pub(crate) fn distinct_bound(plan: &Arc<dyn ExecutionPlan>, stats: &Statistics, expr: &Arc<dyn PhysicalExpr>) -> Option<u64> {
    let column = crate::uncast(expr).downcast_ref::<Column>()?;
    let data_type = plan.schema().field(column.index()).data_type().clone();
    let cs = stats.column_statistics.get(column.index())?;
    if let Some(n) = cs.distinct_count.get_value() {
        return Some(*n as u64 + 1);
    }
    if data_type == DataType::Boolean {
        return Some(3);
    }
    if let (Some(lo), Some(hi)) = (cs.min_value.get_value().and_then(integer), cs.max_value.get_value().and_then(integer))
        && hi >= lo
    {
        return u64::try_from(hi - lo).ok().map(|n| n.saturating_add(2));
    }
    source_distinct(plan, column.index()).map(|n| n + 1)
}

/// An integer-like statistics bound as an integer.
fn integer(v: &ScalarValue) -> Option<i128> {
    use ScalarValue as S;
    Some(match v {
        S::Int8(Some(x)) => i128::from(*x),
        S::Int16(Some(x)) => i128::from(*x),
        S::Int32(Some(x)) => i128::from(*x),
        S::Int64(Some(x)) => i128::from(*x),
        S::UInt8(Some(x)) => i128::from(*x),
        S::UInt16(Some(x)) => i128::from(*x),
        S::UInt32(Some(x)) => i128::from(*x),
        S::UInt64(Some(x)) => i128::from(*x),
        S::Date32(Some(x)) => i128::from(*x),
        _ => return None,
    })
}

/// How many distinct values the column that output column `index` of
/// `plan` reads takes, when its source knows: a Hive partition column (the
/// partition values of the files scanned) or a loaded table's
/// dictionary-encoded text (its dictionaries' values). Follows columns
/// through projections and through nodes that pass their input's columns
/// on unchanged.
fn source_distinct(plan: &Arc<dyn ExecutionPlan>, index: usize) -> Option<u64> {
    if let Some(n) = crate::rapid::scan::dictionary_distinct(plan, index) {
        return Some(n);
    }
    if let Some(scan) = plan.downcast_ref::<DataSourceExec>().and_then(|e| e.data_source().downcast_ref::<FileScanConfig>()) {
        let name = plan.schema().field(index).name().clone();
        let at = scan.table_partition_cols().iter().position(|f| *f.name() == name)?;
        let mut seen: HashSet<&ScalarValue> = HashSet::new();
        for file in scan.file_groups.iter().flat_map(|g| g.iter()) {
            seen.insert(file.partition_values.get(at)?);
        }
        return Some(seen.len() as u64);
    }
    if let Some(p) = plan.downcast_ref::<ProjectionExec>() {
        let column = p.expr().get(index)?.expr.downcast_ref::<Column>()?;
        return source_distinct(p.input(), column.index());
    }
    let children = plan.children();
    if children.len() == 1 && children[0].schema() == plan.schema() {
        return source_distinct(children[0], index);
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use datafusion::dataframe::DataFrameWriteOptions;
    use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

    /// Readings in three Hive partitions (`day=...`), keys 1..50, and a
    /// table of 60 machines in which keys 1..10 appear twice.
    async fn write_tables(dir: &std::path::Path) {
        let ctx = SessionContext::new();
        for day in 1..=3 {
            let part = dir.join(format!("facts/day=2026-01-0{day}"));
            std::fs::create_dir_all(&part).unwrap();
            let df = ctx
                .sql(&format!(
                    "SELECT CAST(value % 50 + 1 AS INT) AS k, \
                            CASE WHEN value % 17 = 0 THEN NULL ELSE value * {day} END AS v, \
                            value % 3 = 0 AS flag, CAST(value % 1000 AS DOUBLE) / 8 AS x \
                     FROM generate_series(1, 40000) AS g(value)"
                ))
                .await
                .unwrap();
            let path = part.join("part-0.parquet");
            df.write_parquet(path.to_str().unwrap(), DataFrameWriteOptions::new().with_single_file_output(true), None)
                .await
                .unwrap();
        }
        let df = ctx
            .sql(
                "SELECT CAST(CASE WHEN value > 50 THEN value - 50 ELSE value END AS INT) AS k, \
                        'site' || CAST(value % 7 AS VARCHAR) AS name \
                 FROM generate_series(1, 60) AS g(value)",
            )
            .await
            .unwrap();
        let path = dir.join("dims.parquet");
        df.write_parquet(path.to_str().unwrap(), DataFrameWriteOptions::new().with_single_file_output(true), None)
            .await
            .unwrap();
    }

    /// A context of two partitions and small batches, planned with
    /// DataFusion's physical rules and, if `eager`, this rule.
    pub(crate) fn context(eager: bool) -> SessionContext {
        let config = SessionConfig::new().with_target_partitions(2).with_batch_size(1000);
        let mut rules = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules;
        if eager {
            insert_rule(&mut rules);
        }
        crate::test_plans::context(config, rules)
    }

    /// The query's rows (as text) and its physical plan, with the rule or
    /// without it.
    async fn run(dir: &std::path::Path, eager: bool, sql: &str) -> (String, String) {
        let ctx = context(eager);
        let facts = ParquetReadOptions::default().table_partition_cols(vec![("day".to_string(), DataType::Utf8)]);
        ctx.register_parquet("facts", dir.join("facts").to_str().unwrap(), facts).await.unwrap();
        ctx.register_parquet("dims", dir.join("dims.parquet").to_str().unwrap(), ParquetReadOptions::default())
            .await
            .unwrap();
        crate::test_plans::rows_and_plan(&ctx, sql).await
    }

    /// Grouped by the small side's text and the readings' partition column,
    /// the readings are aggregated below the join, and every aggregate
    /// comes out as it does above the join: duplicate build keys (a state
    /// merged twice), NULL values, averages, filters on both sides.
    #[tokio::test]
    async fn aggregates_move_below_a_join_with_the_same_answers() {
        let dir = tempfile::tempdir().unwrap();
        write_tables(dir.path()).await;
        let queries = [
            "SELECT d.name, f.day, count(*), sum(f.v), min(f.v), max(f.v), count(f.v), avg(f.x), \
                    sum(CASE WHEN f.flag THEN 1 ELSE 0 END) \
             FROM facts f JOIN dims d ON d.k = f.k GROUP BY d.name, f.day ORDER BY d.name, f.day",
            "SELECT d.name, count(*), avg(f.v) FROM facts f JOIN dims d ON d.k = f.k \
             WHERE d.name <> 'site3' AND f.v > 100 GROUP BY d.name ORDER BY d.name",
            "SELECT f.day, d.k + 1 AS k1, max(f.x) FROM dims d JOIN facts f ON f.k = d.k GROUP BY f.day, d.k + 1 ORDER BY 1, 2",
        ];
        for q in queries {
            let (expected, before) = run(dir.path(), false, q).await;
            let (got, after) = run(dir.path(), true, q).await;
            assert!(!before.contains("PartialReduce"), "{q}\n{before}");
            assert!(after.contains("mode=PartialReduce"), "{q}\n{after}");
            // The aggregation below the join reads the readings' scan.
            let below = after.lines().skip_while(|l| !l.contains("HashJoinExec")).find(|l| l.contains("AggregateExec"));
            assert!(below.is_some_and(|l| l.contains("mode=Partial,") && l.contains("__lakewave_key0")), "{q}\n{after}");
            assert_eq!(got, expected, "{q}");
        }
    }

    /// A value computed once per row above the join (`random()`) is not
    /// moved below it, where each place that reads it would compute it
    /// again: `r - r` stays 0.
    #[tokio::test]
    async fn volatile_values_stay_above_the_join() {
        let dir = tempfile::tempdir().unwrap();
        write_tables(dir.path()).await;
        let q = "SELECT name, max(r - r) AS m FROM (SELECT d.name, random() AS r FROM facts f JOIN dims d ON d.k = f.k) t \
                 GROUP BY name ORDER BY name";
        let (got, after) = run(dir.path(), true, q).await;
        assert!(!after.contains("PartialReduce"), "{after}");
        let zeros = got.lines().filter(|l| l.trim_end().ends_with("| 0.0 |")).count();
        assert_eq!(zeros, 7, "{got}");
    }

    /// Groups the statistics do not bound (a probe column with as many
    /// values as rows) leave the plan alone.
    #[tokio::test]
    async fn no_reduction_no_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        write_tables(dir.path()).await;
        let q = "SELECT d.name, f.v, count(*) FROM facts f JOIN dims d ON d.k = f.k GROUP BY d.name, f.v ORDER BY 1, 2 LIMIT 5";
        let (expected, _) = run(dir.path(), false, q).await;
        let (got, after) = run(dir.path(), true, q).await;
        assert!(!after.contains("PartialReduce"), "{after}");
        assert_eq!(got, expected);
    }
}
