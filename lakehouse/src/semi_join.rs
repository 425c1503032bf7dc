//! Semi and anti joins moved below the joins they do not depend on.
//!
//! DataFusion turns `x IN (subquery)` and `EXISTS (subquery)` into a semi
//! (or anti) join placed above the whole `FROM` clause, so every join of
//! the query runs before the subquery removes a single row. In TPC-H Q18
//! that means joining customer, orders and all of lineitem (6 million rows
//! at SF 1) only to keep the 57 orders the subquery names.
//!
//! A semi join keeps or drops each row by the values of its own columns, so
//! when those columns all come from one input `A` of the join below it, it
//! may filter `A` first:
//!
//! ```text
//! Semi(Join(A, B), S)  =  Join(Semi(A, S), B)
//! ```
//!
//! for an inner join, and for a left join whose preserved side is `A`. It is
//! only worth it when the join does not itself remove many rows of `A`
//! (otherwise the semi join would probe more rows below than above), so the
//! rule moves it down only
//!
//! * through a left join from `A` (it keeps every row of `A`), or
//! * through an inner join whose other side `B` is a plain scan without a
//!   filter: such a join (on a key, as joins of a schema usually are) keeps
//!   or multiplies the rows of `A`, rarely drops them.
//!
//! It also passes projections of plain columns (the planner puts one
//! between joins to drop the columns no longer needed), and repeats the
//! move as far down as it applies.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, JoinType, Result};
use datafusion::logical_expr::{Expr, Join, LogicalPlan, Projection};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

#[derive(Debug, Default)]
pub struct PushDownSemiJoin;

impl OptimizerRule for PushDownSemiJoin {
    fn name(&self) -> &str {
        "push_down_semi_join"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        None
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        plan.transform_down(|node| match node {
            LogicalPlan::Join(join) => push_down(join),
            other => Ok(Transformed::no(other)),
        })
    }
}

/// `semi` moved one level down when it may be; `transform_down` then visits
/// the moved semi join again and takes it further.
fn push_down(semi: Join) -> Result<Transformed<LogicalPlan>> {
    if !matches!(semi.join_type, JoinType::LeftSemi | JoinType::LeftAnti) {
        return Ok(Transformed::no(LogicalPlan::Join(semi)));
    }
    let used = semi_columns(&semi);
    // Through a projection of plain columns (the planner puts one between
    // joins to drop the columns no longer needed): it keeps every row and
    // the columns the semi join reads.
    if let LogicalPlan::Projection(projection) = semi.left.as_ref() {
        let columns_only = projection.expr.iter().all(|e| matches!(e, Expr::Column(_)));
        let goes_further = matches!(projection.input.as_ref(), LogicalPlan::Join(j) if side_to_filter(j, &used).is_some());
        if columns_only && goes_further && used.iter().all(|c| projection.input.schema().has_column(c)) {
            let below = with_inputs(&semi, projection.input.clone(), semi.right.clone())?;
            let moved = Projection::try_new(projection.expr.clone(), Arc::new(LogicalPlan::Join(below)))?;
            if moved.schema.fields() == semi.schema.fields() {
                return Ok(Transformed::yes(LogicalPlan::Projection(moved)));
            }
        }
        return Ok(Transformed::no(LogicalPlan::Join(semi)));
    }
    let LogicalPlan::Join(below) = semi.left.as_ref() else {
        return Ok(Transformed::no(LogicalPlan::Join(semi)));
    };
    let Some(side) = side_to_filter(below, &used) else {
        return Ok(Transformed::no(LogicalPlan::Join(semi)));
    };
    let filtered = |input: &Arc<LogicalPlan>| -> Result<Arc<LogicalPlan>> {
        Ok(Arc::new(LogicalPlan::Join(with_inputs(&semi, input.clone(), semi.right.clone())?)))
    };
    let (left, right) = match side {
        Side::Left => (filtered(&below.left)?, below.right.clone()),
        Side::Right => (below.left.clone(), filtered(&below.right)?),
    };
    let moved = with_inputs(below, left, right)?;
    // The join's output is unchanged (the semi join's output is its left
    // input), so nothing above needs to change.
    if moved.schema.fields() != semi.schema.fields() {
        return Ok(Transformed::no(LogicalPlan::Join(semi)));
    }
    Ok(Transformed::yes(LogicalPlan::Join(moved)))
}

/// `join` (its keys, filter and type) over other inputs.
pub(crate) fn with_inputs(join: &Join, left: Arc<LogicalPlan>, right: Arc<LogicalPlan>) -> Result<Join> {
    Join::try_new(
        left,
        right,
        join.on.clone(),
        join.filter.clone(),
        join.join_type,
        join.join_constraint,
        join.null_equality,
        join.null_aware,
    )
}

enum Side {
    Left,
    Right,
}

/// Which input of `below` a semi join on the columns `used` can filter
/// instead of its output, if any.
fn side_to_filter(below: &Join, used: &[Column]) -> Option<Side> {
    let on_left = used.iter().all(|c| below.left.schema().has_column(c));
    let on_right = used.iter().all(|c| below.right.schema().has_column(c));
    match below.join_type {
        JoinType::Left if on_left => Some(Side::Left),
        JoinType::Right if on_right => Some(Side::Right),
        JoinType::Inner if on_left && unfiltered_scan(&below.right) => Some(Side::Left),
        JoinType::Inner if on_right && unfiltered_scan(&below.left) => Some(Side::Right),
        _ => None,
    }
}

/// The columns of the semi join's left input that decide which rows it
/// keeps: those of its keys and of its filter not from the subquery.
fn semi_columns(semi: &Join) -> Vec<Column> {
    let right: &DFSchema = semi.right.schema();
    let mut used = Vec::new();
    let exprs = semi.on.iter().map(|(l, _)| l).chain(semi.filter.iter());
    for expr in exprs {
        for c in Expr::column_refs(expr) {
            if !right.has_column(c) && !used.contains(c) {
                used.push(c.clone());
            }
        }
    }
    used
}

/// A table read whole: a scan with no filter or limit, under aliases and
/// projections only.
fn unfiltered_scan(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::TableScan(scan) => scan.filters.is_empty() && scan.fetch.is_none(),
        LogicalPlan::SubqueryAlias(alias) => unfiltered_scan(&alias.input),
        LogicalPlan::Projection(p) => unfiltered_scan(&p.input),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::SessionContext;

    fn table(ctx: &SessionContext, name: &str, cols: &[&str], rows: &[&[i64]]) {
        let schema = Arc::new(Schema::new(cols.iter().map(|c| Field::new(*c, DataType::Int64, true)).collect::<Vec<_>>()));
        let arrays = (0..cols.len())
            .map(|i| Arc::new(Int64Array::from(rows.iter().map(|r| r[i]).collect::<Vec<_>>())) as _)
            .collect();
        let batch = RecordBatch::try_new(schema, arrays).expect("batch");
        ctx.register_batch(name, batch).expect("register");
    }

    fn context(with_rule: bool) -> SessionContext {
        let mut builder = SessionStateBuilder::new().with_default_features();
        if with_rule {
            builder = builder.with_optimizer_rule(Arc::new(PushDownSemiJoin));
        }
        let ctx = SessionContext::new_with_state(builder.build());
        table(&ctx, "c", &["ck", "cv"], &[&[1, 10], &[2, 20], &[3, 30]]);
        table(&ctx, "o", &["ok", "ock"], &[&[100, 1], &[101, 1], &[102, 2], &[103, 3], &[104, 9]]);
        table(&ctx, "l", &["lok", "q"], &[&[100, 5], &[100, 7], &[101, 1], &[102, 50], &[103, 2], &[104, 60]]);
        ctx
    }

    async fn run(ctx: &SessionContext, sql: &str) -> (Vec<String>, String) {
        let df = ctx.sql(sql).await.expect("plan");
        let plan = df.clone().into_optimized_plan().expect("optimize").display_indent().to_string();
        let batches = df.collect().await.expect("run");
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches).expect("format").to_string();
        (text.lines().map(str::to_string).collect(), plan)
    }

    /// The Q18 shape: the semi join ends below both joins, and the answer is
    /// the one without the rule.
    #[tokio::test]
    async fn in_subquery_filters_its_table_before_the_joins() {
        let sql = "SELECT cv, ok, SUM(q) AS s FROM c, o, l \
                   WHERE ok IN (SELECT lok FROM l GROUP BY lok HAVING SUM(q) > 10) AND ck = ock AND ok = lok \
                   GROUP BY cv, ok ORDER BY ok";
        let (with, plan) = run(&context(true), sql).await;
        let (without, _) = run(&context(false), sql).await;
        assert_eq!(with, without);
        assert_eq!(with[3..5], ["| 10 | 100 | 12 |".to_string(), "| 20 | 102 | 50 |".to_string()]);
        assert_eq!(with.len(), 6, "{with:?}");
        let semi = plan.lines().position(|l| l.contains("LeftSemi Join")).expect(&plan);
        let inner: Vec<usize> =
            plan.lines().enumerate().filter(|(_, l)| l.contains("Inner Join")).map(|(i, _)| i).collect();
        assert!(inner.len() == 2 && inner.iter().all(|&i| i < semi), "{plan}");
    }

    /// NOT EXISTS through a left join keeps the unmatched rows of the left
    /// side; a join with a filtered table keeps the semi join above it.
    #[tokio::test]
    async fn anti_join_and_filtered_joins() {
        let anti = "SELECT ok, cv FROM o LEFT JOIN c ON ck = ock \
                    WHERE NOT EXISTS (SELECT 1 FROM l WHERE lok = ok AND q > 40) ORDER BY ok";
        let (with, plan) = run(&context(true), anti).await;
        let (without, _) = run(&context(false), anti).await;
        assert_eq!(with, without);
        assert_eq!(with.len(), 3 + 3 + 1, "{with:?}");
        let anti_at = plan.lines().position(|l| l.contains("LeftAnti Join")).expect(&plan);
        let left_at = plan.lines().position(|l| l.contains("Left Join")).expect(&plan);
        assert!(left_at < anti_at, "{plan}");

        let kept = "SELECT ok FROM o, c WHERE ck = ock AND cv > 10 \
                    AND ok IN (SELECT lok FROM l WHERE q > 1) ORDER BY ok";
        let (with, plan) = run(&context(true), kept).await;
        let (without, _) = run(&context(false), kept).await;
        assert_eq!(with, without);
        let semi_at = plan.lines().position(|l| l.contains("LeftSemi Join")).expect(&plan);
        let inner_at = plan.lines().position(|l| l.contains("Inner Join")).expect(&plan);
        assert!(semi_at < inner_at, "{plan}");
    }
}
