//! A grouped subquery computed only for the keys the outer query can use.
//!
//! DataFusion turns a correlated scalar subquery into an aggregation over
//! every key, joined back to the outer query on that key. TPC-H Q2 asks
//! for the cheapest European supplier of 747 parts, and the subquery
//! becomes `min(ps_supplycost)` over all of Europe's `partsupp` rows:
//! 159K rows in 117K groups at SF 1, most of the query's time, of which
//! the join keeps 460.
//!
//! When a join's input is an aggregation grouped by a plain column `k`
//! of a table `T`, equal to an outer column that comes, through inner
//! joins, projections and filters only, from a filtered scan `S`, the
//! outer column's values are among `S`'s. So [`FilterSubqueryKeys`] puts a
//! semi join of `T` with the keys of `S` (its scan and filters, cloned)
//! right above `T`'s scan: the groups it removes could not have joined.
//! The executed join then builds on `S`'s few keys and filters `T`'s rows
//! as they are scanned. `S` is read twice; the rule applies only when `S`
//! has a filter, so that its keys are fewer than the table's.
//!
//! It applies to joins where unmatched rows of the aggregation's side are
//! not kept (inner, semi and anti joins from the other side, and outer
//! joins preserving the other side), and moves only through operators
//! that pass rows of `T` through with `k` unchanged: projections of
//! plain columns, filters, inner joins, and the preserved side of semi,
//! anti and outer joins. It runs after the MySQL pushdown, so an
//! aggregation of MySQL tables that runs inside MySQL is left whole (a
//! semi join with lake keys would keep it from being pushed).
//! `LAKEWAVE_SUBQUERY_KEYS=off` in the server's environment turns it off,
//! for comparisons.

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, JoinType, NullEquality, Result};
use datafusion::logical_expr::{
    Aggregate, Expr, Filter, Join, LogicalPlan, LogicalPlanBuilder, Projection, SubqueryAlias,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use crate::semi_join::with_inputs;

/// The alias of the keys' subtree; a semi join with it marks a scan the
/// rule has already filtered.
const KEYS: &str = "__subquery_keys";

#[derive(Debug, Default)]
pub struct FilterSubqueryKeys;

impl OptimizerRule for FilterSubqueryKeys {
    fn name(&self) -> &str {
        "filter_subquery_keys"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        None
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        if crate::switched_off("LAKEWAVE_SUBQUERY_KEYS") {
            return Ok(Transformed::no(plan));
        }
        plan.transform_down(|node| match node {
            LogicalPlan::Join(join) => rewrite_join(join),
            other => Ok(Transformed::no(other)),
        })
    }
}

fn rewrite_join(join: Join) -> Result<Transformed<LogicalPlan>> {
    let keeps_unmatched_right = !matches!(join.join_type, JoinType::Inner | JoinType::LeftSemi | JoinType::LeftAnti | JoinType::Left);
    if keeps_unmatched_right || join.null_equality != NullEquality::NullEqualsNothing || join.null_aware {
        return Ok(Transformed::no(LogicalPlan::Join(join)));
    }
    for (outer, inner) in &join.on {
        let (Expr::Column(outer), Expr::Column(inner)) = (outer, inner) else {
            continue;
        };
        // The outer side's keys, looked for once the subquery's side has
        // been followed down to a scan under its aggregation.
        let mut keys = || -> Result<Option<(LogicalPlan, Column)>> {
            let Some((source, key)) = key_source(&join.left, outer) else { return Ok(None) };
            let keys = LogicalPlanBuilder::from(source).project(vec![Expr::Column(key.clone())])?.alias(KEYS)?.build()?;
            Ok(Some((keys, Column::new(Some(KEYS), key.name))))
        };
        if let Some(right) = restrict(&join.right, inner, &mut keys, false)? {
            let rewritten = with_inputs(&join, join.left.clone(), Arc::new(right))?;
            return Ok(Transformed::yes(LogicalPlan::Join(rewritten)));
        }
    }
    Ok(Transformed::no(LogicalPlan::Join(join)))
}

/// The input column that `col` of a projection or alias passes through
/// unchanged, if it does.
fn inner_column(plan: &LogicalPlan, col: &Column) -> Option<Column> {
    let idx = plan.schema().index_of_column(col).ok()?;
    match plan {
        LogicalPlan::SubqueryAlias(a) => Some(Column::from(a.input.schema().qualified_field(idx))),
        LogicalPlan::Projection(p) => match p.expr.get(idx)?.clone().unalias() {
            Expr::Column(c) => Some(c),
            _ => None,
        },
        _ => None,
    }
}

/// The input column an aggregation groups by as its output `col`.
fn group_column(a: &Aggregate, col: &Column) -> Option<Column> {
    let idx = a.schema.index_of_column(col).ok()?;
    if idx >= a.group_expr.len() || a.group_expr.iter().any(|e| matches!(e, Expr::GroupingSet(_))) {
        return None;
    }
    match a.group_expr[idx].clone().unalias() {
        Expr::Column(c) => Some(c),
        _ => None,
    }
}

/// Which input of a join holds `col` and passes its rows on with it: both
/// sides of an inner join, the preserved side of the others.
fn passing_side(j: &Join, col: &Column) -> Option<usize> {
    let left = j.left.schema().has_column(col);
    let right = j.right.schema().has_column(col);
    match j.join_type {
        JoinType::Inner if left => Some(0),
        JoinType::Inner if right => Some(1),
        JoinType::Left | JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark if left => Some(0),
        JoinType::Right | JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark if right => Some(1),
        _ => None,
    }
}

/// A filtered scan (with its filters and projections) whose column the
/// values of `col` in `plan` come from, and that column.
fn key_source(plan: &LogicalPlan, col: &Column) -> Option<(LogicalPlan, Column)> {
    if is_filtered_scan(plan) {
        return plan.schema().has_column(col).then(|| (plan.clone(), col.clone()));
    }
    match plan {
        LogicalPlan::SubqueryAlias(_) | LogicalPlan::Projection(_) => key_source(plan.inputs()[0], &inner_column(plan, col)?),
        LogicalPlan::Filter(f) => key_source(&f.input, col),
        LogicalPlan::Join(j) => {
            let side = passing_side(j, col)?;
            key_source(if side == 0 { &j.left } else { &j.right }, col)
        }
        _ => None,
    }
}

/// A chain of filters and projections over one table scan, with at least
/// one filter, and no subquery or volatile function to repeat.
fn is_filtered_scan(plan: &LogicalPlan) -> bool {
    let mut filtered = false;
    let mut node = plan;
    loop {
        match node {
            LogicalPlan::TableScan(scan) => return filtered || !scan.filters.is_empty(),
            LogicalPlan::Filter(Filter { predicate, input, .. }) => {
                if !repeatable(predicate) {
                    return false;
                }
                filtered = true;
                node = input;
            }
            LogicalPlan::Projection(Projection { expr, input, .. }) => {
                if !expr.iter().all(repeatable) {
                    return false;
                }
                node = input;
            }
            _ => return false,
        }
    }
}

/// The keys' subtree this rule puts in a semi join under a scan.
pub(crate) fn is_keys(plan: &LogicalPlan) -> bool {
    matches!(plan, LogicalPlan::SubqueryAlias(a) if a.alias.table() == KEYS)
}

/// No volatile function or subquery in `expr`: it may be evaluated again
/// elsewhere in the plan with the same result.
pub(crate) fn repeatable(expr: &Expr) -> bool {
    let unrepeatable = |e: &Expr| {
        e.is_volatile_node()
            || matches!(e, Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) | Expr::OuterReferenceColumn(..))
    };
    expr.exists(|e| Ok(unrepeatable(e))).is_ok_and(|found| !found)
}

/// The outer side's keys and their column, if it has a filtered source.
type Keys<'a> = dyn FnMut() -> Result<Option<(LogicalPlan, Column)>> + 'a;

/// `plan` with the scan that `col` comes from semi-joined with the keys
/// `keys` gives (on `col` = their column), or `None` when `col` cannot be
/// followed to a scan through an aggregation grouped by it, the scan is
/// filtered by the rule already, or there are no keys. `below_group` says
/// whether that aggregation was passed: only then are rows removed safely.
fn restrict(plan: &LogicalPlan, col: &Column, keys: &mut Keys<'_>, below_group: bool) -> Result<Option<LogicalPlan>> {
    let rebuilt = match plan {
        LogicalPlan::SubqueryAlias(a) => {
            let Some(inner) = inner_column(plan, col) else { return Ok(None) };
            let Some(input) = restrict(&a.input, &inner, keys, below_group)? else { return Ok(None) };
            LogicalPlan::SubqueryAlias(SubqueryAlias::try_new(Arc::new(input), a.alias.clone())?)
        }
        LogicalPlan::Projection(p) => {
            let Some(inner) = inner_column(plan, col) else { return Ok(None) };
            let Some(input) = restrict(&p.input, &inner, keys, below_group)? else { return Ok(None) };
            LogicalPlan::Projection(Projection::try_new(p.expr.clone(), Arc::new(input))?)
        }
        LogicalPlan::Aggregate(a) => {
            let Some(inner) = group_column(a, col) else { return Ok(None) };
            let Some(input) = restrict(&a.input, &inner, keys, true)? else { return Ok(None) };
            LogicalPlan::Aggregate(Aggregate::try_new(Arc::new(input), a.group_expr.clone(), a.aggr_expr.clone())?)
        }
        _ if !below_group => return Ok(None),
        LogicalPlan::Filter(f) => {
            let Some(input) = restrict(&f.input, col, keys, below_group)? else { return Ok(None) };
            LogicalPlan::Filter(Filter::try_new(f.predicate.clone(), Arc::new(input))?)
        }
        LogicalPlan::Join(j) => {
            if is_keys(&j.right) {
                return Ok(None);
            }
            let Some(side) = passing_side(j, col) else { return Ok(None) };
            let (left, right) = if side == 0 {
                let Some(left) = restrict(&j.left, col, keys, below_group)? else { return Ok(None) };
                (Arc::new(left), j.right.clone())
            } else {
                let Some(right) = restrict(&j.right, col, keys, below_group)? else { return Ok(None) };
                (j.left.clone(), Arc::new(right))
            };
            LogicalPlan::Join(with_inputs(j, left, right)?)
        }
        LogicalPlan::TableScan(_) if plan.schema().has_column(col) => {
            let Some((keys, key)) = keys()? else { return Ok(None) };
            LogicalPlanBuilder::from(plan.clone()).join(keys, JoinType::LeftSemi, (vec![col.clone()], vec![key]), None)?.build()?
        }
        _ => return Ok(None),
    };
    // Every step keeps its output's columns as they were.
    if rebuilt.schema().fields() != plan.schema().fields() {
        return Ok(None);
    }
    Ok(Some(rebuilt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_plans::{context_with_rule, int64_table, rows_and_logical_plan as run};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    fn table(columns: Vec<(&str, Vec<i64>)>) -> Arc<MemTable> {
        int64_table(columns.into_iter().map(|(name, values)| (name, values.into_iter().map(Some).collect())).collect())
    }

    fn context(rule: bool) -> SessionContext {
        let ctx = context_with_rule(rule.then(|| Arc::new(FilterSubqueryKeys) as _));
        // part(p_key, p_size): 200 parts; offer(o_part, o_supp, o_cost):
        // three offers per part; supp(s_key, s_region).
        let parts: Vec<i64> = (0..200).collect();
        ctx.register_table("part", table(vec![("p_key", parts.clone()), ("p_size", parts.iter().map(|p| p % 7).collect())])).unwrap();
        let offer_part: Vec<i64> = (0..600).map(|i| i / 3).collect();
        let offer_supp: Vec<i64> = (0..600).map(|i| (i * 7) % 10).collect();
        let offer_cost: Vec<i64> = (0..600).map(|i| (i * 37) % 101).collect();
        ctx.register_table("offer", table(vec![("o_part", offer_part), ("o_supp", offer_supp), ("o_cost", offer_cost)])).unwrap();
        ctx.register_table("supp", table(vec![("s_key", (0..10).collect()), ("s_region", (0..10).map(|s| s % 2).collect())])).unwrap();
        ctx
    }

    #[tokio::test]
    async fn subqueries_grouped_by_the_join_key_keep_their_answers() {
        let applies = [
            // Q2's shape: the cheapest offer of the region, per part kept.
            "SELECT p_key, o_supp, o_cost FROM part, offer, supp WHERE p_key = o_part AND o_supp = s_key AND p_size = 3 \
             AND s_region = 1 AND o_cost = (SELECT min(o_cost) FROM offer, supp WHERE o_part = p_key AND o_supp = s_key AND s_region = 1) \
             ORDER BY p_key, o_supp",
            // Q17's shape: rows below a per-key average.
            "SELECT count(*), sum(o_cost) FROM offer, part WHERE p_key = o_part AND p_size IN (1, 2) \
             AND o_cost < (SELECT avg(o_cost) FROM offer WHERE o_part = p_key)",
            // An outer join kept from the outer side, and an anti join.
            "SELECT p_key, m FROM part LEFT JOIN (SELECT o_part, max(o_cost) m FROM offer GROUP BY o_part) x ON p_key = o_part \
             WHERE p_size = 5 ORDER BY p_key",
            "SELECT count(*) FROM part WHERE p_size = 4 AND p_key NOT IN (SELECT o_part FROM offer GROUP BY o_part HAVING max(o_cost) > 90)",
        ];
        for sql in applies {
            let (want, _) = run(&context(false), sql).await;
            let (got, plan) = run(&context(true), sql).await;
            assert_eq!(got, want, "{sql}\n{plan}");
            assert!(want.lines().count() > 4, "the query must find rows: {want}");
            if !sql.contains("NOT IN") {
                assert!(plan.contains(KEYS), "{sql}\n{plan}");
            }
        }
        // Unmatched groups are kept by a join from the aggregation's side:
        // the rule leaves it; and an unfiltered outer side brings nothing.
        let left = [
            "SELECT o_part, m, p_size FROM (SELECT o_part, max(o_cost) m FROM offer GROUP BY o_part) x LEFT JOIN part ON p_key = o_part AND p_size = 5 ORDER BY o_part",
            "SELECT p_key, m FROM part JOIN (SELECT o_part, max(o_cost) m FROM offer GROUP BY o_part) x ON p_key = o_part ORDER BY p_key",
        ];
        for sql in left {
            let (want, _) = run(&context(false), sql).await;
            let (got, plan) = run(&context(true), sql).await;
            assert_eq!(got, want, "{sql}\n{plan}");
            assert!(!plan.contains(KEYS), "{sql}\n{plan}");
        }
    }
}
