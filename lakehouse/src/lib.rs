//! The Lakewave lakehouse: the durable catalog of databases and external
//! tables, the translation of both DDL dialects (DataFusion's
//! `CREATE EXTERNAL TABLE` and HeatWave's `ENGINE=lakehouse`) into table
//! definitions, the DataFusion providers that read those tables in place, and
//! a MySQL-shaped `information_schema`.
//!
//! The front end talks to this crate through [`Lakehouse`]: it asks for a
//! per-session [`datafusion::prelude::SessionContext`] to run queries and calls
//! the DDL methods, which persist every change before acknowledging it.

pub(crate) mod agg_reorder;
pub mod capture;
pub mod catalog;
pub mod conjunction;
pub mod decimal_arith;
pub mod dense_groups;
pub mod ddl;
pub mod diagnose;
pub mod dict_group;
pub mod eager_agg;
pub mod engine;
pub mod group_keys;
pub mod grouped_exec;
pub mod error;
pub mod exports;
pub mod heatwave;
pub mod info_schema;
pub mod join_mode;
pub mod key_bitmap;
pub mod like_segments;
pub mod listing;
pub mod model;
pub mod mysql_arith;
pub mod not_in;
pub mod parquet_dict;
pub mod persist;
pub mod plan_cache;
pub mod provider;
pub mod rapid;
pub mod runtime_filter;
pub mod scan_split;
pub mod secondary;
pub mod selectivity;
pub mod semi_join;
pub mod shared_subplan;
pub mod subquery_keys;
pub mod subquery_window;
pub mod text;
pub mod types;

pub use engine::{Lakehouse, LakehouseOptions};

/// Whether the server's environment sets `var` to `off`: the switches that
/// turn one of the engine's own optimisations off, to measure what it
/// brings (`LAKEWAVE_RUNTIME_FILTERS=off` and the like, and the binary's
/// `LAKEWAVE_MALLOC_TUNING=off`).
pub fn switched_off(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v.eq_ignore_ascii_case("off"))
}

/// `e` without the casts (`CAST`, `TRY_CAST`) around it.
pub(crate) fn uncast(
    e: &std::sync::Arc<dyn datafusion::physical_expr::PhysicalExpr>,
) -> &std::sync::Arc<dyn datafusion::physical_expr::PhysicalExpr> {
    use datafusion::physical_expr::expressions::{CastExpr, TryCastExpr};
    match (e.downcast_ref::<CastExpr>(), e.downcast_ref::<TryCastExpr>()) {
        (Some(c), _) => uncast(c.expr()),
        (_, Some(c)) => uncast(c.expr()),
        _ => e,
    }
}

/// `filter` with another predicate over the same input, keeping its
/// projection, selectivity, batch size and limit.
pub(crate) fn filter_with_predicate(
    filter: &datafusion::physical_plan::filter::FilterExec,
    predicate: std::sync::Arc<dyn datafusion::physical_expr::PhysicalExpr>,
) -> datafusion::common::Result<datafusion::physical_plan::filter::FilterExec> {
    use datafusion::physical_plan::ExecutionPlan as _;
    datafusion::physical_plan::filter::FilterExecBuilder::new(predicate, std::sync::Arc::clone(filter.input()))
        .apply_projection_by_ref(filter.projection().as_ref())?
        .with_default_selectivity(filter.default_selectivity())
        .with_batch_size(filter.batch_size())
        .with_fetch(filter.fetch())
        .build()
}

/// The one child given to a node that takes exactly one (the engine's
/// nodes that pass their input's rows on, in `replace_children`).
pub(crate) fn only_child(
    node: &str,
    mut children: Vec<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>>,
) -> datafusion::common::Result<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
    if children.len() != 1 {
        return datafusion::common::internal_err!("{node} takes one child, got {}", children.len());
    }
    Ok(children.swap_remove(0))
}

/// Puts `rule` just before DataFusion's sanity check (last when the list
/// has none): for rules that rewrite what the others have finished with.
pub(crate) fn insert_before_sanity_check(
    rules: &mut Vec<std::sync::Arc<dyn datafusion::physical_optimizer::PhysicalOptimizerRule + Send + Sync>>,
    rule: std::sync::Arc<dyn datafusion::physical_optimizer::PhysicalOptimizerRule + Send + Sync>,
) {
    let at = rules.iter().position(|r| r.name() == "SanityCheckPlan").unwrap_or(rules.len());
    rules.insert(at, rule);
}

/// A physical rule's result, `rewritten`, when it changed something and
/// DataFusion's sanity check accepts it; `original` otherwise. For rules
/// whose rewrites can hide a property a parent relies on (a partitioning,
/// an ordering), where keeping the plan as it was is the safe answer.
pub(crate) fn if_still_valid(
    rewritten: datafusion::common::tree_node::Transformed<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>>,
    original: std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    config: &datafusion::common::config::ConfigOptions,
) -> std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan> {
    use datafusion::physical_optimizer::PhysicalOptimizerRule;
    if !rewritten.transformed {
        return original;
    }
    match datafusion::physical_optimizer::sanity_checker::SanityCheckPlan::new()
        .optimize(std::sync::Arc::clone(&rewritten.data), config)
    {
        Ok(_) => rewritten.data,
        Err(_) => original,
    }
}
pub use error::{LakeError, Result};
pub use model::{ColumnDef, DdlDialect, TableDef};

/// Helpers shared by the planner rules' unit tests.
#[cfg(test)]
pub(crate) mod test_plans {
    use std::sync::Arc;

    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;
    use datafusion::physical_optimizer::PhysicalOptimizerRule;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

    /// A context with DataFusion's defaults but for `config` and the
    /// physical optimizer's `rules`.
    pub fn context(config: SessionConfig, rules: Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>>) -> SessionContext {
        let state = datafusion::execution::SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_physical_optimizer_rules(rules)
            .build();
        SessionContext::new_with_state(state)
    }

    /// A table of nullable 64-bit integer columns, in one batch.
    pub fn int64_table(columns: Vec<(&str, Vec<Option<i64>>)>) -> Arc<datafusion::datasource::MemTable> {
        use datafusion::arrow::array::{Int64Array, RecordBatch};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        let schema = Arc::new(Schema::new(columns.iter().map(|(n, _)| Field::new(*n, DataType::Int64, true)).collect::<Vec<_>>()));
        let arrays = columns.into_iter().map(|(_, v)| Arc::new(Int64Array::from(v)) as _).collect();
        let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap();
        Arc::new(datafusion::datasource::MemTable::try_new(schema, vec![vec![batch]]).unwrap())
    }

    /// A context with DataFusion's defaults, two partitions, and the
    /// logical optimizer `rule` after DataFusion's when given.
    pub fn context_with_rule(rule: Option<Arc<dyn datafusion::optimizer::OptimizerRule + Send + Sync>>) -> SessionContext {
        let mut builder = datafusion::execution::SessionStateBuilder::new()
            .with_config(SessionConfig::new().with_target_partitions(2))
            .with_default_features();
        if let Some(rule) = rule {
            builder = builder.with_optimizer_rule(rule);
        }
        SessionContext::new_with_state(builder.build())
    }

    /// The rows of `sql` on `ctx` (as a text table) and its optimized
    /// logical plan.
    pub async fn rows_and_logical_plan(ctx: &SessionContext, sql: &str) -> (String, String) {
        let df = ctx.sql(sql).await.unwrap();
        let rows = datafusion::arrow::util::pretty::pretty_format_batches(&df.clone().collect().await.unwrap()).unwrap().to_string();
        (rows, df.into_optimized_plan().unwrap().display_indent().to_string())
    }

    /// The rows of `sql` on `ctx` (as a text table) and its physical plan.
    pub async fn rows_and_plan(ctx: &SessionContext, sql: &str) -> (String, String) {
        let df = ctx.sql(sql).await.unwrap();
        let rows = df.clone().collect().await.unwrap();
        let physical = df.create_physical_plan().await.unwrap();
        let rows = datafusion::arrow::util::pretty::pretty_format_batches(&rows).unwrap().to_string();
        (rows, displayable(physical.as_ref()).indent(false).to_string())
    }

    /// Runs `sql` (a query whose first value is a count) over the Parquet
    /// files `dir/<table>.parquet`, planned with `rules`: the count and
    /// the physical plan.
    pub async fn count_and_plan(
        dir: &std::path::Path,
        tables: &[&str],
        config: SessionConfig,
        rules: Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>>,
        sql: &str,
    ) -> (i64, String) {
        let ctx = context(config, rules);
        for t in tables {
            let path = dir.join(format!("{t}.parquet"));
            ctx.register_parquet(*t, path.to_str().unwrap(), ParquetReadOptions::default()).await.unwrap();
        }
        let df = ctx.sql(sql).await.unwrap();
        let rows = df.clone().collect().await.unwrap();
        let count = rows[0].column(0).as_primitive::<Int64Type>().value(0);
        let physical = df.create_physical_plan().await.unwrap();
        (count, displayable(physical.as_ref()).indent(false).to_string())
    }
}
