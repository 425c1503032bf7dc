//! Dictionary-encoded text grouped as string views.
//!
//! DataFusion groups by several columns column by column (one typed store
//! per column, compared in vectors) only when every column has a type it
//! supports; dictionary-encoded text is not one of them, so a single such
//! column among the keys sends the whole aggregation through its row
//! format: every row's key turned back into text, copied into a row and
//! hashed as bytes. The loaded copies keep low-cardinality text as
//! dictionaries, so TPC-H Q16 (`GROUP BY p_brand, p_type, p_size`, and the
//! same keys again with `ps_suppkey` for its `COUNT(DISTINCT ...)`) ran
//! slower on the loaded copies than on the Parquet files, whose text comes
//! as string views.
//!
//! [`ViewGroupKeys`] casts such keys to string views where the grouping
//! starts (a view points into the dictionary's own values, so the cast
//! copies 16 bytes per row and no text), keeps them as views through the
//! repartitioning to the final aggregation, and casts the final groups
//! back to the dictionary type the rest of the plan expects. Partial
//! aggregations that [`crate::dict_group`] groups by the dictionaries'
//! codes (every key a dictionary) are left to it.
//!
//! `LAKEWAVE_VIEW_GROUP_KEYS=off` in the server's environment turns the
//! rule off, for comparisons.

use std::sync::Arc;

use datafusion::arrow::compute::can_cast_types;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{CastExpr, Column, cast};
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode, PhysicalGroupBy};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, InputOrderMode};

#[derive(Debug, Default)]
pub struct ViewGroupKeys;

impl PhysicalOptimizerRule for ViewGroupKeys {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if crate::switched_off("LAKEWAVE_VIEW_GROUP_KEYS") {
            return Ok(plan);
        }
        let rewritten = Arc::clone(&plan).transform_up(|node| {
            let Some(agg) = node.downcast_ref::<AggregateExec>() else {
                return Ok(Transformed::no(node));
            };
            let rewritten = match agg.mode() {
                AggregateMode::Final | AggregateMode::FinalPartitioned => rewrite_final(agg)?,
                // (Not `SinglePartitioned`: its input is partitioned by the
                // keys as they were, which the cast keys would not match.)
                AggregateMode::Single => {
                    match with_view_keys(agg)? {
                        Some(single) => cast_back(single, &agg.schema())?,
                        None => None,
                    }
                }
                _ => None,
            };
            Ok(match rewritten {
                Some(plan) => Transformed::yes(plan),
                None => Transformed::no(node),
            })
        })?;
        // The cast-back projection no longer says the groups are
        // partitioned by their keys (and views hash short strings unlike
        // dictionaries, so it must not): a parent that needs that
        // partitioning (a partitioned join or window on the keys) would be
        // left without it. Such plans keep their aggregations as they were.
        Ok(crate::if_still_valid(rewritten, plan, config))
    }

    fn name(&self) -> &str {
        "ViewGroupKeys"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Whether a grouping key of this type is dictionary-encoded text (cast to
/// a string view here; grouped by its codes in [`crate::dict_group`]).
pub(crate) fn is_dictionary_text(dt: &DataType) -> bool {
    matches!(dt, DataType::Dictionary(k, v) if k.is_dictionary_key_type() && **v == DataType::Utf8)
}

/// `agg` (grouping raw rows: partial or single) with its dictionary-encoded
/// text keys cast to string views, or `None` when it has none or is of a
/// kind this rule leaves alone (grouping sets, sorted input, a limit).
fn with_view_keys(agg: &AggregateExec) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let group_by = agg.group_expr();
    if !group_by.is_single()
        || agg.limit_options().is_some()
        || !agg.dynamic_expressions_produced().is_empty()
        || *agg.input_order_mode() != InputOrderMode::Linear
        // An aggregate's ORDER BY on a grouping key is dropped as trivially
        // satisfied; on the cast key it would not be.
        || agg.aggr_expr().iter().any(|a| !a.order_bys().is_empty())
    {
        return Ok(None);
    }
    let (source, views) = match views_below(agg)? {
        Some((projection, views)) => (projection, views),
        None => (Arc::clone(agg.input()), Vec::new()),
    };
    let input = agg.input().schema();
    let mut any = !views.is_empty();
    let mut keys = Vec::with_capacity(group_by.expr().len());
    for (e, name) in group_by.expr() {
        let dt = e.data_type(&input)?;
        if e.downcast_ref::<Column>().is_some_and(|c| views.contains(&c.index())) {
            // Already a view below.
            keys.push((Arc::clone(e), name.clone()));
        } else if is_dictionary_text(&dt) && can_cast_types(&DataType::Utf8View, &dt) {
            any = true;
            keys.push((
                cast(Arc::clone(e), &input, DataType::Utf8View)?,
                name.clone(),
            ));
        } else {
            keys.push((Arc::clone(e), name.clone()));
        }
    }
    if !any {
        return Ok(None);
    }
    // The input's schema changed only in columns the aggregates do not read.
    let input_schema = if views.is_empty() { agg.input_schema() } else { source.schema() };
    let new = AggregateExec::try_new(
        *agg.mode(),
        PhysicalGroupBy::new_single(keys),
        agg.aggr_expr().to_vec(),
        agg.filter_expr().to_vec(),
        source,
        input_schema,
    )?;
    Ok(Some(Arc::new(new)))
}

/// When `agg` reads a projection casting string views to dictionary text
/// (what [`cast_back`] puts above an aggregation whose groups are views:
/// `COUNT(DISTINCT ...)` aggregates the groups of one aggregation again),
/// the projection without those casts, and the columns it now passes as
/// views: those `agg` uses only as grouping keys, as they are. Casting the
/// groups to dictionaries and straight back to views hashed every group's
/// text to build the dictionaries.
fn views_below(agg: &AggregateExec) -> Result<Option<(Arc<dyn ExecutionPlan>, Vec<usize>)>> {
    let Some(projection) = agg.input().downcast_ref::<ProjectionExec>() else {
        return Ok(None);
    };
    let below = projection.input().schema();
    let bare = |e: &Arc<dyn PhysicalExpr>| e.downcast_ref::<Column>().map(Column::index);
    // Columns read by anything but a bare grouping key.
    let mut read: Vec<usize> = Vec::new();
    for a in agg.aggr_expr() {
        for e in a.expressions() {
            read.extend(collect_columns(&e).iter().map(Column::index));
        }
    }
    for f in agg.filter_expr().iter().flatten() {
        read.extend(collect_columns(f).iter().map(Column::index));
    }
    for (e, _) in agg.group_expr().expr() {
        if bare(e).is_none() {
            read.extend(collect_columns(e).iter().map(Column::index));
        }
    }
    let mut views = Vec::new();
    let mut exprs = projection.expr().to_vec();
    for (e, _) in agg.group_expr().expr() {
        let Some(i) = bare(e) else { continue };
        if read.contains(&i) || views.contains(&i) {
            continue;
        }
        let Some(c) = exprs.get(i).and_then(|p| p.expr.downcast_ref::<CastExpr>()) else { continue };
        if is_dictionary_text(c.cast_type()) && c.expr().data_type(&below)? == DataType::Utf8View {
            let inner = Arc::clone(c.expr());
            exprs[i].expr = inner;
            views.push(i);
        }
    }
    if views.is_empty() {
        return Ok(None);
    }
    let projection = ProjectionExec::try_new(exprs, Arc::clone(projection.input()))?;
    Ok(Some((Arc::new(projection), views)))
}

/// A final aggregation whose partial one (below its repartitioning or
/// merge) groups by dictionary-encoded text, with both grouping by views.
fn rewrite_final(agg: &AggregateExec) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if !agg.group_expr().is_single()
        || agg.limit_options().is_some()
        || !agg.dynamic_expressions_produced().is_empty()
    {
        return Ok(None);
    }
    // The exchange between the two aggregations, top down.
    let mut exchange: Vec<&Arc<dyn ExecutionPlan>> = Vec::new();
    let mut below = agg.input();
    while below.downcast_ref::<RepartitionExec>().is_some()
        || below.downcast_ref::<CoalescePartitionsExec>().is_some()
    {
        exchange.push(below);
        below = below.children()[0];
    }
    let Some(partial) = below.downcast_ref::<AggregateExec>() else {
        return Ok(None);
    };
    if *partial.mode() != AggregateMode::Partial {
        return Ok(None);
    }
    let Some(mut input) = with_view_keys(partial)? else {
        return Ok(None);
    };
    for node in exchange.into_iter().rev() {
        input = Arc::clone(node).replace_children(
            vec![input],
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )?;
    }
    let last = AggregateExec::try_new(
        *agg.mode(),
        agg.group_expr().clone(),
        agg.aggr_expr().to_vec(),
        agg.filter_expr().to_vec(),
        input,
        agg.input_schema(),
    )?;
    cast_back(Arc::new(last), &agg.schema())
}

/// `plan` with every column whose type differs from `want`'s cast back to
/// it, or `None` when that cannot be done.
fn cast_back(
    plan: Arc<dyn ExecutionPlan>,
    want: &SchemaRef,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let have = plan.schema();
    if have.fields().len() != want.fields().len() {
        return Ok(None);
    }
    let mut exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = Vec::with_capacity(have.fields().len());
    for (i, (h, w)) in have.fields().iter().zip(want.fields()).enumerate() {
        let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new(h.name(), i));
        if h.data_type() == w.data_type() {
            exprs.push((column, w.name().clone()));
        } else if can_cast_types(h.data_type(), w.data_type()) {
            exprs.push((
                cast(column, &have, w.data_type().clone())?,
                w.name().clone(),
            ));
        } else {
            return Ok(None);
        }
    }
    let projection = ProjectionExec::try_new(exprs, plan)?;
    let got = projection.schema();
    let same = got.fields().iter().zip(want.fields()).all(|(g, w)| {
        g.name() == w.name()
            && g.data_type() == w.data_type()
            && g.is_nullable() == w.is_nullable()
            && g.metadata() == w.metadata()
    });
    Ok(same.then(|| Arc::new(projection) as Arc<dyn ExecutionPlan>))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::physical_optimizer::sanity_checker::SanityCheckPlan;
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// Groups keyed by dictionary text together with other columns come out
    /// the same, and of the same types, with the keys grouped as views:
    /// NULL keys and values, distinct counts (two aggregations over the
    /// same keys), single-phase aggregation and more groups than a batch.
    #[tokio::test]
    async fn same_groups_with_view_keys() -> Result<()> {
        let config = SessionConfig::new()
            .with_target_partitions(2)
            .with_batch_size(1000);
        let ctx = SessionContext::new_with_config(config);
        ctx.sql(
            "CREATE TABLE t AS SELECT arrow_cast(CASE WHEN v % 13 = 0 THEN NULL ELSE chr(65 + v % 5) END, 'Dictionary(Int32, Utf8)') AS a, \
                    arrow_cast(CAST(v % 7 AS VARCHAR), 'Dictionary(Int8, Utf8)') AS b, \
                    arrow_cast(CAST(v % 3001 AS VARCHAR) || ' a longer text than twelve bytes', 'Dictionary(Int32, Utf8)') AS c, v, \
                    v % 17 AS s, CASE WHEN v % 11 = 0 THEN NULL ELSE v END AS n \
             FROM generate_series(1, 20000) AS g(v)",
        )
        .await?
        .collect()
        .await?;
        let queries = [
            "SELECT a, s, count(*), sum(v), min(c), max(c) FROM t GROUP BY a, s ORDER BY a, s",
            "SELECT a, b, s, count(DISTINCT n) FROM t GROUP BY a, b, s ORDER BY a, b, s",
            "SELECT c, s, n % 3 AS k, sum(v) FROM t GROUP BY c, s, k ORDER BY c, s, k",
            "SELECT a, b, c, v % 5 AS k, count(*) FROM t GROUP BY a, b, c, k ORDER BY a, b, c, k LIMIT 50",
            "SELECT a, count(*) FROM t GROUP BY a, s HAVING count(*) > 200 ORDER BY a, count(*)",
        ];
        for q in queries {
            let df = ctx.sql(q).await?;
            let expected = df.clone().collect().await?;
            let plan = df.create_physical_plan().await?;
            let before = plan.schema();
            let plan = ViewGroupKeys.optimize(plan, &ConfigOptions::default())?;
            let shown = displayable(plan.as_ref()).indent(false).to_string();
            assert!(shown.contains("Utf8View"), "{q}: {shown}");
            assert_eq!(plan.schema(), before, "{q}");
            let got = datafusion::physical_plan::collect(plan, ctx.task_ctx()).await?;
            assert_eq!(
                pretty_format_batches(&got)?.to_string(),
                pretty_format_batches(&expected)?.to_string(),
                "{q}"
            );
        }
        Ok(())
    }

    /// `COUNT(DISTINCT ...)` groups the groups of one aggregation again: the
    /// groups stay views from one to the other, cast to dictionaries once,
    /// at the end.
    #[tokio::test]
    async fn groups_of_groups_stay_views() -> Result<()> {
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2).with_batch_size(100));
        ctx.sql(
            "CREATE TABLE t AS SELECT arrow_cast(chr(65 + v % 5), 'Dictionary(Int32, Utf8)') AS a, \
                    arrow_cast(CAST(v % 7 AS VARCHAR) || ' a longer text than twelve bytes', 'Dictionary(Int8, Utf8)') AS b, v % 3 AS s, v \
             FROM generate_series(1, 3000) AS g(v)",
        )
        .await?
        .collect()
        .await?;
        let df = ctx.sql("SELECT a, b, s, count(DISTINCT v % 50) FROM t GROUP BY a, b, s ORDER BY a, b, s").await?;
        let expected = df.clone().collect().await?;
        let plan = ViewGroupKeys.optimize(df.create_physical_plan().await?, &ConfigOptions::default())?;
        let shown = displayable(plan.as_ref()).indent(false).to_string();
        assert_eq!(shown.matches("AggregateExec").count(), 4, "{shown}");
        assert_eq!(shown.matches("AS Dictionary").count(), 2, "{shown}");
        let got = datafusion::physical_plan::collect(plan, ctx.task_ctx()).await?;
        assert_eq!(pretty_format_batches(&got)?.to_string(), pretty_format_batches(&expected)?.to_string());
        assert_eq!(got.iter().map(|b| b.num_rows()).sum::<usize>(), 105);
        Ok(())
    }

    /// Plans whose parents need the groups partitioned by their keys (a
    /// partitioned join or a window on them) or ordered by one of them (an
    /// aggregate's ORDER BY) stay valid, and answer as before.
    #[tokio::test]
    async fn parents_needing_the_keys_stay_valid() -> Result<()> {
        let config = SessionConfig::new().with_target_partitions(2).with_batch_size(1000);
        let ctx = SessionContext::new_with_config(config);
        ctx.sql(
            "CREATE TABLE t AS SELECT arrow_cast(chr(65 + v % 5), 'Dictionary(Int32, Utf8)') AS a, v % 17 AS s, v \
             FROM generate_series(1, 20000) AS g(v)",
        )
        .await?
        .collect()
        .await?;
        // Joins are partitioned at any size, so the join below reuses the
        // aggregations' partitioning.
        ctx.sql("SET datafusion.optimizer.hash_join_single_partition_threshold = 0").await?.collect().await?;
        ctx.sql("SET datafusion.optimizer.hash_join_single_partition_threshold_rows = 0").await?.collect().await?;
        let queries = [
            "SELECT x.a, x.s, x.c, y.c FROM (SELECT a, s, count(*) AS c FROM t GROUP BY a, s) x \
             JOIN (SELECT a, s, sum(v) AS c FROM t GROUP BY a, s) y ON x.a = y.a AND x.s = y.s ORDER BY x.a, x.s",
            "SELECT a, s, count(*) AS c, rank() OVER (PARTITION BY a, s ORDER BY count(*)) FROM t GROUP BY a, s ORDER BY a, s",
            "SELECT a, s, array_agg(v ORDER BY a, v DESC) FROM t WHERE v < 300 GROUP BY a, s ORDER BY a, s",
        ];
        for q in queries {
            let df = ctx.sql(q).await?;
            let expected = df.clone().collect().await?;
            let plan = df.create_physical_plan().await?;
            let plan = ViewGroupKeys.optimize(plan, &ConfigOptions::default())?;
            SanityCheckPlan::new().optimize(Arc::clone(&plan), &ConfigOptions::default())?;
            let got = datafusion::physical_plan::collect(plan, ctx.task_ctx()).await?;
            assert_eq!(pretty_format_batches(&got)?.to_string(), pretty_format_batches(&expected)?.to_string(), "{q}");
        }
        Ok(())
    }

    /// Aggregations without dictionary keys are left as they are.
    #[tokio::test]
    async fn other_keys_unchanged() -> Result<()> {
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
        let df = ctx.sql("SELECT v % 3 AS k, CAST(v AS VARCHAR) AS t, count(*) FROM generate_series(1, 10) AS g(v) GROUP BY k, t").await?;
        let plan = df.create_physical_plan().await?;
        let before = displayable(plan.as_ref()).indent(false).to_string();
        let after = ViewGroupKeys.optimize(plan, &ConfigOptions::default())?;
        assert_eq!(
            displayable(after.as_ref()).indent(false).to_string(),
            before
        );
        Ok(())
    }
}
