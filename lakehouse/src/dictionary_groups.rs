//! `GROUP BY` on dictionary-encoded text groups by the text as views.
//!
//! DataFusion 55 groups dictionary columns through Arrow's row format
//! (every row's key converted to bytes, hashed and compared as bytes); it
//! groups `Utf8View` columns column by column, which is several times
//! cheaper per row. Loaded tables keep low-cardinality text as dictionaries
//! (and partition columns are dictionaries too), so TPC-H Q1's grouping by
//! `l_returnflag, l_linestatus` over 6M rows took about a quarter of the
//! query in the row format. This rule casts such grouping keys to
//! `Utf8View` and casts the (few) groups back to the dictionary type above
//! the aggregation, so the plan's output is unchanged.
//!
//! `LAKEWAVE_GROUP_VIEWS=off` in the server's environment leaves the
//! grouping as it is, for comparisons.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, Result};
use datafusion::logical_expr::{Aggregate, Expr, ExprSchemable, LogicalPlan, Projection, cast};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| !std::env::var("LAKEWAVE_GROUP_VIEWS").is_ok_and(|v| v.eq_ignore_ascii_case("off")))
}

fn is_text_dictionary(dt: &DataType) -> bool {
    matches!(dt, DataType::Dictionary(_, v) if matches!(v.as_ref(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View))
}

#[derive(Debug, Default)]
pub struct GroupDictionariesAsViews;

impl OptimizerRule for GroupDictionariesAsViews {
    fn name(&self) -> &str {
        "lakewave_group_dictionaries_as_views"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        if !enabled() {
            return Ok(Transformed::no(plan));
        }
        plan.transform_up_with_subqueries(rewrite_aggregate)
    }
}

fn rewrite_aggregate(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let LogicalPlan::Aggregate(agg) = &node else { return Ok(Transformed::no(node)) };
    if agg.group_expr.iter().any(|e| matches!(e, Expr::GroupingSet(_))) {
        return Ok(Transformed::no(node));
    }
    let input = agg.input.schema();
    let dictionary: Vec<bool> =
        agg.group_expr.iter().map(|e| e.get_type(input).is_ok_and(|t| is_text_dictionary(&t))).collect();
    if !dictionary.contains(&true) {
        return Ok(Transformed::no(node));
    }
    let group: Vec<Expr> = agg
        .group_expr
        .iter()
        .zip(&dictionary)
        .map(|(e, d)| if *d { cast(e.clone(), DataType::Utf8View) } else { e.clone() })
        .collect();
    let original = Arc::clone(&agg.schema);
    let grouped = Aggregate::try_new(Arc::clone(&agg.input), group, agg.aggr_expr.clone())?;
    let schema = Arc::clone(&grouped.schema);
    if schema.fields().len() != original.fields().len() {
        return Ok(Transformed::no(node));
    }
    // The aggregation's columns under their old names and types.
    let columns: Vec<Expr> = (0..original.fields().len())
        .map(|i| {
            let column = Expr::Column(Column::from(schema.qualified_field(i)));
            let (qualifier, field) = original.qualified_field(i);
            let value = if dictionary.get(i).copied().unwrap_or(false) { cast(column, field.data_type().clone()) } else { column };
            value.alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    let projection = Projection::try_new(columns, Arc::new(LogicalPlan::Aggregate(grouped)))?;
    Ok(Transformed::yes(LogicalPlan::Projection(projection)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{DictionaryArray, Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{Field, Int32Type, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::SessionContext;

    fn context(rule: bool) -> Result<SessionContext> {
        let mut builder = SessionStateBuilder::new().with_default_features();
        if rule {
            builder = builder.with_optimizer_rule(Arc::new(GroupDictionariesAsViews));
        }
        let ctx = SessionContext::new_with_state(builder.build());
        let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let schema = Arc::new(Schema::new(vec![
            Field::new("flag", dict.clone(), true),
            Field::new("status", dict, false),
            Field::new("n", DataType::Int64, false),
        ]));
        let batches = (0..3)
            .map(|b| {
                let flag: DictionaryArray<Int32Type> =
                    (0..100).map(|i| if i % 13 == 0 { None } else { Some(["A", "N", "R"][(i + b) % 3]) }).collect();
                let status: DictionaryArray<Int32Type> = (0..100).map(|i| ["F", "O"][(i / 7) % 2]).collect();
                let n = Int64Array::from_iter_values((0..100).map(|i| (i * 7 + b) as i64));
                RecordBatch::try_new(schema.clone(), vec![Arc::new(flag), Arc::new(status), Arc::new(n)])
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        ctx.register_table("t", Arc::new(MemTable::try_new(schema, vec![batches])?))?;
        Ok(ctx)
    }

    async fn run(ctx: &SessionContext, sql: &str) -> Result<String> {
        Ok(pretty_format_batches(&ctx.sql(sql).await?.collect().await?)?.to_string())
    }

    #[tokio::test]
    async fn groups_are_the_same_and_keep_their_type() -> Result<()> {
        let (with, without) = (context(true)?, context(false)?);
        for sql in [
            "SELECT flag, status, sum(n), count(*) FROM t GROUP BY flag, status ORDER BY flag, status",
            "SELECT status, count(DISTINCT flag) FROM t GROUP BY status ORDER BY status",
            "SELECT flag, max(n) FROM t WHERE n > 50 GROUP BY flag HAVING count(*) > 10 ORDER BY flag",
            "SELECT arrow_typeof(flag), count(*) FROM t GROUP BY flag ORDER BY 2",
        ] {
            assert_eq!(run(&with, sql).await?, run(&without, sql).await?, "{sql}");
        }
        let plan = run(&with, "EXPLAIN SELECT flag, status, sum(n) FROM t GROUP BY flag, status").await?;
        assert!(plan.contains("Utf8View"), "{plan}");
        Ok(())
    }
}
