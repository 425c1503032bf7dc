//! `NOT IN (subquery)` over keys that hold no NULLs, joined as `NOT EXISTS`.
//!
//! DataFusion turns `x NOT IN (SELECT y ...)` into a null-aware anti join
//! whenever `x` or `y` may be NULL by their schema: a NULL among the
//! subquery's keys makes every comparison unknown, so the join must see the
//! whole subquery side before it emits a row. Such a join always builds on
//! the outer side, in one partition, and is never swapped. Lake tables
//! declare most columns nullable, so TPC-H Q16 (`ps_suppkey NOT IN` the 56
//! suppliers with complaints, SF 10) built a table of the 1.19M outer rows,
//! probed it with the 56, and emitted the survivors from a single partition,
//! which left the aggregations above it on one core.
//!
//! When neither key can be NULL the answer is that of a plain anti join.
//! [`PlainNotIn`] proves it from the plan: a key column is followed down
//! through projections, filters, inner and semi joins and repartitions to a
//! table scan whose statistics count exactly zero NULLs in it (Parquet
//! footers carry the counts; loaded copies keep them). It then clears the
//! join's null-aware flag before DataFusion's join selection, which can then
//! build on the smaller side and keep the probe's partitions. Anything it
//! cannot follow keeps the null-aware join. `LAKEWAVE_PLAIN_NOT_IN=off`
//! turns the rule off, for comparisons.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{JoinSide, JoinType, Result};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::projection::ProjectionRef;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::utils::build_join_schema;
use datafusion::physical_plan::joins::HashJoinExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
use datafusion::physical_plan::ExecutionPlan;

/// How deep a key column is followed before the proof gives up.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Default)]
pub struct PlainNotIn;

/// Puts the rule just before DataFusion's join selection.
pub fn insert_rule(rules: &mut Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>>) {
    if crate::switched_off("LAKEWAVE_PLAIN_NOT_IN") {
        return;
    }
    match rules.iter().position(|r| r.name() == "join_selection") {
        Some(i) => rules.insert(i, Arc::new(PlainNotIn)),
        None => tracing::warn!("DataFusion's join selection was not found; NOT IN subqueries stay null-aware joins"),
    }
}

impl PhysicalOptimizerRule for PlainNotIn {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else { return Ok(Transformed::no(node)) };
            if !join.null_aware || join.filter().is_some() {
                return Ok(Transformed::no(node));
            }
            let keys_never_null = join.on().iter().all(|(l, r)| {
                let side = |e: &Arc<dyn datafusion::physical_expr::PhysicalExpr>, input: &Arc<dyn ExecutionPlan>| {
                    e.downcast_ref::<Column>().is_some_and(|c| never_null(input, c.index(), 0))
                };
                side(l, join.left()) && side(r, join.right())
            });
            if !keys_never_null {
                return Ok(Transformed::no(node));
            }
            Ok(Transformed::yes(join.builder().with_null_aware(false).build_exec()?))
        })
        .data()
    }

    fn name(&self) -> &str {
        "PlainNotIn"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// True when column `index` of `plan`'s output is proven to hold no NULL.
fn never_null(plan: &Arc<dyn ExecutionPlan>, index: usize, depth: usize) -> bool {
    let schema = plan.schema();
    let Some(field) = schema.fields().get(index) else { return false };
    if !field.is_nullable() {
        return true;
    }
    if depth >= MAX_DEPTH {
        return false;
    }
    let next = depth + 1;
    if let Some(p) = plan.downcast_ref::<ProjectionExec>() {
        return p.expr().get(index).and_then(|e| e.expr.downcast_ref::<Column>()).is_some_and(|c| never_null(p.input(), c.index(), next));
    }
    if let Some(f) = plan.downcast_ref::<FilterExec>() {
        return unprojected(f.projection(), index).is_some_and(|i| never_null(f.input(), i, next));
    }
    if let Some(j) = plan.downcast_ref::<HashJoinExec>() {
        let (_, columns) = build_join_schema(&j.left().schema(), &j.right().schema(), j.join_type());
        let Some(column) = unprojected(&j.projection, index).and_then(|at| columns.get(at)) else { return false };
        // Sides an outer join pads with NULLs are not followed.
        let kept = match column.side {
            JoinSide::Left => !matches!(j.join_type(), JoinType::Right | JoinType::Full),
            JoinSide::Right => !matches!(j.join_type(), JoinType::Left | JoinType::Full),
            JoinSide::None => false,
        };
        let input = if column.side == JoinSide::Left { j.left() } else { j.right() };
        return kept && never_null(input, column.index, next);
    }
    let passes_rows = plan.downcast_ref::<RepartitionExec>().is_some()
        || plan.downcast_ref::<CoalescePartitionsExec>().is_some()
        || plan.downcast_ref::<SortExec>().is_some();
    if passes_rows {
        return plan.children().first().is_some_and(|c| never_null(c, index, next));
    }
    if !plan.children().is_empty() {
        return false;
    }
    // A scan: its statistics must count the column's NULLs exactly.
    StatisticsContext::new()
        .compute(plan.as_ref(), &StatisticsArgs::new())
        .ok()
        .and_then(|s| s.column_statistics.get(index).map(|c| c.null_count == Precision::Exact(0)))
        .unwrap_or(false)
}

/// The column of a node's unprojected output that column `index` of its
/// output is, given the node's own projection.
fn unprojected(projection: &Option<ProjectionRef>, index: usize) -> Option<usize> {
    match projection {
        Some(p) => p.get(index).copied(),
        None => Some(index),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::dataframe::DataFrameWriteOptions;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// `{name}_k`: the even numbers 2..=2*rows, every tenth NULL when
    /// `nulls` (Parquet footers count them); nullable by its schema either
    /// way, as lake tables' columns usually are.
    async fn write_table(dir: &std::path::Path, name: &str, rows: i64, nulls: bool) {
        let ctx = SessionContext::new();
        let value = if nulls { "CASE WHEN value % 10 = 0 THEN NULL ELSE value * 2 END" } else { "CASE WHEN value > 0 THEN value * 2 END" };
        let sql = format!("SELECT {value} AS {name}_k, value AS {name}_v FROM generate_series(1, {rows})");
        let df = ctx.sql(&sql).await.unwrap();
        let path = dir.join(format!("{name}.parquet"));
        df.write_parquet(path.to_str().unwrap(), DataFrameWriteOptions::new().with_single_file_output(true), None)
            .await
            .unwrap();
    }

    /// `small` (1,000 keys) and `big` (100,000) without NULLs, `holes`
    /// (1,000, every tenth NULL).
    async fn tables() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write_table(dir.path(), "small", 1_000, false).await;
        write_table(dir.path(), "big", 100_000, false).await;
        write_table(dir.path(), "holes", 1_000, true).await;
        dir
    }

    /// The query's count and its physical plan, with or without the rule.
    async fn run(dir: &std::path::Path, rule: bool, sql: &str) -> (i64, String) {
        let mut rules = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules;
        if rule {
            insert_rule(&mut rules);
        }
        let config = SessionConfig::new().with_target_partitions(2);
        crate::test_plans::count_and_plan(dir, &["small", "big", "holes"], config, rules, sql).await
    }

    #[tokio::test]
    async fn not_in_over_keys_without_nulls_builds_on_the_small_side() {
        let dir = tables().await;
        // Keys followed through a filter and a projection to the scans.
        let sql = "SELECT COUNT(*) FROM big WHERE big_v > 10 AND big_k NOT IN (SELECT small_k FROM small WHERE small_v > 0)";
        let (count, default) = run(dir.path(), false, sql).await;
        assert_eq!(count, 99_000);
        assert!(default.contains("null_aware"), "{default}");
        let (count, plain) = run(dir.path(), true, sql).await;
        assert_eq!(count, 99_000, "{plain}");
        assert!(!plain.contains("null_aware"), "{plain}");
        // The 1,000 subquery keys are the build (first) side.
        let join = plain.lines().position(|l| l.contains("HashJoinExec")).unwrap();
        let build = plain.lines().skip(join + 1).find(|l| l.contains("DataSourceExec")).unwrap();
        assert!(build.contains("small.parquet"), "{plain}");
    }

    #[tokio::test]
    async fn a_key_that_may_be_null_keeps_the_null_aware_join() {
        let dir = tables().await;
        let cases = [
            // A NULL among the subquery's keys: no row is surely not in it.
            ("SELECT COUNT(*) FROM big WHERE big_k NOT IN (SELECT holes_k FROM holes)", 0),
            // NULL outer keys are not counted, the others are.
            ("SELECT COUNT(*) FROM holes WHERE holes_k NOT IN (SELECT big_k FROM big WHERE big_k > 1000)", 450),
            // A key padded with NULLs by an outer join.
            (
                "SELECT COUNT(*) FROM big WHERE big_k NOT IN \
                 (SELECT small_k FROM big LEFT JOIN small ON small_k = big_k + 1)",
                0,
            ),
        ];
        for (sql, want) in cases {
            let (count, plan) = run(dir.path(), true, sql).await;
            assert_eq!(count, want, "{sql}\n{plan}");
            assert!(plan.contains("null_aware"), "{sql}\n{plan}");
        }
    }
}
