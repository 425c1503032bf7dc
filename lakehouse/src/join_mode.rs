//! Which hash joins build one shared table instead of partitioning both
//! sides.
//!
//! DataFusion builds a join's hash table once and shares it across the
//! probe's partitions (`CollectLeft`) only when the build side is under a
//! fixed size (1 MiB or 128K rows); larger joins partition both inputs by
//! the key (`Partitioned`). On a machine with few cores that is the wrong
//! trade when the probe side is much larger than the build side: every
//! probe row is hashed and copied into a partition before it is joined,
//! and the runtime filter the join pushes to the probe's scan becomes a
//! routed `CASE` over the row's hash, too costly to evaluate at the scan
//! (see `runtime_filter`), so rows that cannot join are repartitioned too.
//! TPC-H Q5 joins the 228K orders of a year with all 6M `lineitem` rows
//! that way.
//!
//! [`CollectSmallBuilds`] runs after DataFusion's join selection, before
//! the repartitions are placed, and turns a partitioned hash join into a
//! collected one (its smaller side built) when the estimated rows of that
//! side are at most [`MAX_BUILD_ROWS`] and at most 1/[`MIN_PROBE_RATIO`]
//! of the other side's. Joins whose estimates are unknown keep their mode.
//! `LAKEWAVE_COLLECT_SMALL_BUILDS=off` in the server's environment turns
//! the rule off, for comparisons.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};

/// Largest estimated build side collected into one table. One thread
/// builds it (about 200 ms for 2M rows here) while the other cores wait,
/// but the probe side is then neither hashed into partitions nor copied:
/// at TPC-H SF 10 the year's 2.3M orders of Q5 against all 60M `lineitem`
/// rows, partitioned, cost 0.67 times as much collected (Q3 0.76, Q7
/// 0.80, Q20 0.89 in the same A/B). Q18 at SF 1 lost 3-8% (its build,
/// estimated at 1.5M rows, holds 57).
pub const MAX_BUILD_ROWS: usize = 4 << 20;

/// Largest estimated build side in bytes (wide rows), when known.
pub const MAX_BUILD_BYTES: usize = 64 << 20;

/// How many times larger than the build side the probe side must be.
pub const MIN_PROBE_RATIO: usize = 4;

/// How many times more rows than the probe side a partitioned join's build
/// side may be estimated to have before its inputs are swapped.
pub const MAX_BUILD_RATIO: usize = 8;

#[derive(Debug, Default)]
pub struct CollectSmallBuilds;

impl PhysicalOptimizerRule for CollectSmallBuilds {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        if crate::switched_off("LAKEWAVE_COLLECT_SMALL_BUILDS") {
            return Ok(plan);
        }
        let swap_allowed = config.optimizer.join_reordering;
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else { return Ok(Transformed::no(node)) };
            match collected(join, swap_allowed)? {
                Some(new) => Ok(Transformed::yes(new)),
                None => Ok(Transformed::no(node)),
            }
        })
        .data()
    }

    fn name(&self) -> &str {
        "lakewave_collect_small_builds"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The join as a collected one, when its sizes call for it.
fn collected(join: &HashJoinExec, swap_allowed: bool) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if join.partition_mode() != &PartitionMode::Partitioned || join.null_aware {
        return Ok(None);
    }
    let (Some(left), Some(right)) = (estimate(join.left()), estimate(join.right())) else {
        return Ok(None);
    };
    let small = |build: (usize, Option<usize>), probe: (usize, Option<usize>)| {
        build.0 <= MAX_BUILD_ROWS
            && build.1.is_none_or(|bytes| bytes <= MAX_BUILD_BYTES)
            && build.0.saturating_mul(MIN_PROBE_RATIO) <= probe.0
    };
    if small(left, right) {
        let new = join.builder().with_partition_mode(PartitionMode::CollectLeft).build()?;
        return Ok(Some(Arc::new(new)));
    }
    // (An unbounded input is never made the side that is built whole.)
    let bounded = !join.right().boundedness().is_unbounded();
    if swap_allowed && bounded && join.join_type().supports_swap() && small(right, left) {
        return Ok(Some(join.swap_inputs(PartitionMode::CollectLeft)?));
    }
    // DataFusion builds the side of fewer estimated bytes when both sides
    // have a byte estimate, and a semi join's is taken from its other
    // input: TPC-H Q21's `NOT EXISTS` built its hash table on 38M
    // `lineitem` rows (60M estimated) to probe 708K (600K estimated), whose
    // bytes were estimated from all of `lineitem`. Rows decide when they
    // disagree that much.
    if swap_allowed && bounded && join.join_type().supports_swap() && right.0.saturating_mul(MAX_BUILD_RATIO) < left.0 {
        return Ok(Some(join.swap_inputs(PartitionMode::Partitioned)?));
    }
    Ok(None)
}

/// Estimated rows and, when known, bytes of a join input.
fn estimate(plan: &Arc<dyn ExecutionPlan>) -> Option<(usize, Option<usize>)> {
    let stats = StatisticsContext::new().compute(plan.as_ref(), &StatisticsArgs::new()).ok()?;
    Some((*stats.num_rows.get_value()?, stats.total_byte_size.get_value().copied()))
}

/// Puts [`CollectSmallBuilds`] right after DataFusion's join selection.
pub fn insert_rule(rules: &mut Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>>) {
    match rules.iter().position(|r| r.name() == "join_selection") {
        Some(i) => rules.insert(i + 1, Arc::new(CollectSmallBuilds)),
        None => tracing::warn!("DataFusion's join selection was not found; hash joins keep its modes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::dataframe::DataFrameWriteOptions;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// Parquet files carry row counts, as the lake's tables do.
    async fn write_table(dir: &std::path::Path, name: &str, rows: i64) {
        let ctx = SessionContext::new();
        let df = ctx.sql(&format!("SELECT value * 2 AS {name}_k FROM generate_series(1, {rows})")).await.unwrap();
        let path = dir.join(format!("{name}.parquet"));
        df.write_parquet(path.to_str().unwrap(), DataFrameWriteOptions::new().with_single_file_output(true), None)
            .await
            .unwrap();
    }

    /// The query's count and its physical plan.
    async fn run(dir: &std::path::Path, collect_small: bool, sql: &str) -> (i64, String) {
        let config = SessionConfig::new()
            .with_target_partitions(2)
            // Makes DataFusion's own choice partitioned at these sizes.
            .set_usize("datafusion.optimizer.hash_join_single_partition_threshold", 1)
            .set_usize("datafusion.optimizer.hash_join_single_partition_threshold_rows", 1);
        let mut rules = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules;
        if collect_small {
            insert_rule(&mut rules);
        }
        crate::test_plans::count_and_plan(dir, &["small", "big"], config, rules, sql).await
    }

    #[tokio::test]
    async fn a_small_build_side_is_collected_and_built_from_the_smaller_table() {
        let dir = tempfile::tempdir().unwrap();
        write_table(dir.path(), "small", 1_000).await;
        write_table(dir.path(), "big", 100_000).await;
        let inner = "SELECT COUNT(*) FROM big JOIN small ON big_k = small_k";
        let (count, default) = run(dir.path(), false, inner).await;
        assert_eq!(count, 1_000);
        assert!(default.contains("mode=Partitioned"), "{default}");
        let (count, tuned) = run(dir.path(), true, inner).await;
        assert_eq!(count, 1_000);
        assert!(tuned.contains("HashJoinExec: mode=CollectLeft"), "{tuned}");
        assert!(!tuned.contains("mode=Partitioned") && !tuned.contains("partitioning=Hash"), "{tuned}");
        // The smaller table is the build (first) side.
        let join = tuned.lines().position(|l| l.contains("HashJoinExec")).unwrap();
        let build = tuned.lines().skip(join + 1).find(|l| l.contains("DataSourceExec")).unwrap();
        assert!(build.contains("small.parquet"), "{tuned}");
    }

    /// A plan node with the given estimates (`usize::MAX` rows: unknown)
    /// and one Int64 column `k`.
    fn input(rows: usize, bytes: usize) -> Arc<dyn ExecutionPlan> {
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::common::stats::Precision;
        use datafusion::physical_plan::{ColumnStatistics, Statistics};
        let schema = Schema::new(vec![Field::new("k", DataType::Int64, false)]);
        let stats = Statistics {
            num_rows: if rows == usize::MAX { Precision::Absent } else { Precision::Inexact(rows) },
            total_byte_size: Precision::Inexact(bytes),
            column_statistics: vec![ColumnStatistics::new_unknown()],
        };
        Arc::new(datafusion::physical_plan::test::exec::StatisticsExec::new(stats, schema))
    }

    #[test]
    fn a_build_side_of_many_more_estimated_rows_is_swapped() {
        use datafusion::common::{JoinType, NullEquality};
        use datafusion::physical_expr::expressions::Column;
        let join = |left: Arc<dyn ExecutionPlan>, right: Arc<dyn ExecutionPlan>| {
            let on = vec![(Arc::new(Column::new("k", 0)) as _, Arc::new(Column::new("k", 0)) as _)];
            HashJoinExec::try_new(left, right, on, None, &JoinType::RightAnti, None, PartitionMode::Partitioned, NullEquality::NullEqualsNothing, false)
                .unwrap()
        };
        // TPC-H Q21 at SF 10 as DataFusion left it: a `NOT EXISTS` built on
        // 60M estimated rows against 600K whose byte estimate is larger.
        let q21 = join(input(60_000_000, 1 << 30), input(600_000, 2 << 30));
        let swapped = collected(&q21, true).unwrap().expect("swapped");
        let swapped = swapped.downcast_ref::<HashJoinExec>().expect("a hash join on top");
        assert_eq!(swapped.join_type(), &JoinType::LeftAnti);
        assert_eq!(swapped.partition_mode(), &PartitionMode::Partitioned);
        assert_eq!(estimate(swapped.left()).map(|e| e.0), Some(600_000));
        // Not when swapping is off, nor within the ratio, nor when unknown.
        assert!(collected(&q21, false).unwrap().is_none());
        assert!(collected(&join(input(4_000_000, 1 << 30), input(600_000, 2 << 30)), true).unwrap().is_none());
        assert!(collected(&join(input(60_000_000, 1 << 30), input(usize::MAX, 0)), true).unwrap().is_none());
    }

    #[tokio::test]
    async fn outer_and_anti_joins_keep_their_answers_when_collected() {
        let dir = tempfile::tempdir().unwrap();
        write_table(dir.path(), "small", 1_000).await;
        write_table(dir.path(), "big", 100_000).await;
        let cases = [
            ("SELECT COUNT(*) FROM big LEFT JOIN small ON big_k = small_k", 100_000),
            ("SELECT COUNT(small_k) FROM small RIGHT JOIN big ON big_k = small_k", 1_000),
            ("SELECT COUNT(*) FROM small FULL JOIN big ON big_k = small_k + 1", 101_000),
            ("SELECT COUNT(*) FROM big WHERE NOT EXISTS (SELECT 1 FROM small WHERE small_k = big_k)", 99_000),
            ("SELECT COUNT(*) FROM big WHERE EXISTS (SELECT 1 FROM small WHERE small_k = big_k)", 1_000),
            ("SELECT COUNT(*) FROM big JOIN small ON big_k = small_k AND big_k % 4 = 0", 500),
        ];
        for (sql, want) in cases {
            let (count, default) = run(dir.path(), false, sql).await;
            assert_eq!(count, want, "{sql}\n{default}");
            assert!(default.contains("mode=Partitioned"), "{sql}\n{default}");
            let (count, tuned) = run(dir.path(), true, sql).await;
            assert_eq!(count, want, "{sql}\n{tuned}");
            assert!(!tuned.contains("mode=Partitioned"), "{sql}\n{tuned}");
        }
    }
}
