//! Subqueries that aggregate the outer query's own rows, computed as
//! windows over those rows: a per-key MIN or MAX over tables the outer
//! query already joins (TPC-H Q2, below), and a total bounding the
//! groups of an aggregation over the same tables (Q11, [`rewrite_total`]).
//!
//! TPC-H Q2 keeps the offers of European suppliers whose cost is the
//! lowest among the European offers of the same part:
//!
//! ```text
//! ps_supplycost = (SELECT min(ps_supplycost) FROM partsupp, supplier, nation, region
//!                  WHERE p_partkey = ps_partkey AND <the outer query's own joins and filters>)
//! ```
//!
//! DataFusion turns it into an aggregation of those tables grouped by the
//! key, joined back to the outer query on the key and on the cost, so the
//! tables are read and joined twice. But the subquery's rows for a part
//! are exactly the outer query's rows for that part, so the minimum is a
//! window over the outer rows, partitioned by the key:
//!
//! ```text
//! Semi(O, Aggregate(k; min(x)) over I) on c = k, y = min(x)
//!   =  Filter(y = w) over Window(w = min(x) OVER (PARTITION BY c)) over O
//! ```
//!
//! It holds when, flattened into scans and conjuncts:
//!
//! * `I`'s tables appear in `O` (by name, each once in both), and `O`
//!   has more tables `R`;
//! * the conjuncts of `O` over `I`'s tables only are exactly those of `I`;
//! * the others of `O` read `R`'s tables only, or equate `k` with a
//!   column of `R` (the correlation);
//! * `c` is `k` or one of those columns of `R`, `y` is `x`, and the
//!   aggregate is MIN or MAX.
//!
//! Then `O`'s rows with `c = v` hold every row of `I` with `k = v`, each
//! repeated once per matching row of `R`, and repeats change neither a
//! minimum nor a maximum. Only inner joins, filters, projections of plain
//! columns and scans are flattened; anything else leaves the plan alone.
//! The semi join [`crate::subquery_keys`] may have put under `I`'s scan
//! only removes keys `O` does not have, so it is ignored.
//! `LAKEWAVE_SUBQUERY_WINDOW=off` in the server's environment turns the
//! rule off, for comparisons.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, JoinType, NullEquality, Result, TableReference};
use datafusion::logical_expr::expr::{AggregateFunction, AggregateFunctionParams, WindowFunction};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    Aggregate, BinaryExpr, Expr, Join, LogicalPlan, LogicalPlanBuilder, Operator, WindowFunctionDefinition,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

/// The window's output column.
const WINDOW: &str = "__lakewave_subquery_window";

#[derive(Debug, Default)]
pub struct SubqueryAsWindow;

impl OptimizerRule for SubqueryAsWindow {
    fn name(&self) -> &str {
        "subquery_as_window"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        None
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        if crate::switched_off("LAKEWAVE_SUBQUERY_WINDOW") {
            return Ok(Transformed::no(plan));
        }
        plan.transform_down(|node| {
            let rewritten = match &node {
                LogicalPlan::Join(join) => rewrite_join(join)?,
                LogicalPlan::Filter(filter) => rewrite_total(filter)?,
                _ => None,
            };
            Ok(match rewritten {
                Some(plan) => Transformed::yes(plan),
                None => Transformed::no(node),
            })
        })
    }
}

/// The aggregation side of the join: its output columns for the key and
/// the aggregate, what they are computed from, and its input.
struct Grouped {
    key_out: Column,
    agg_out: Column,
    key: Column,
    arg: Column,
    func: Arc<datafusion::logical_expr::AggregateUDF>,
    input: Arc<LogicalPlan>,
}

fn rewrite_join(join: &Join) -> Result<Option<LogicalPlan>> {
    if join.null_equality != NullEquality::NullEqualsNothing || join.null_aware {
        return Ok(None);
    }
    // Which input is the aggregation; semi joins must keep the other one.
    let (grouped_right, g) = match join.join_type {
        JoinType::Inner => match grouped(&join.right) {
            g @ Some(_) => (true, g),
            None => (false, grouped(&join.left)),
        },
        JoinType::LeftSemi => (true, grouped(&join.right)),
        JoinType::RightSemi => (false, grouped(&join.left)),
        _ => return Ok(None),
    };
    let Some(g) = g else { return Ok(None) };
    let (outer, agg_side) = if grouped_right { (&join.left, &join.right) } else { (&join.right, &join.left) };

    // The join's conditions: the key and the aggregate, each equated once
    // with a plain column of the outer side.
    let mut conditions: Vec<(Expr, Expr)> = join.on.clone();
    if let Some(filter) = &join.filter {
        for c in split_conjunction(filter) {
            let Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) = c else { return Ok(None) };
            conditions.push((left.as_ref().clone(), right.as_ref().clone()));
        }
    }
    let (mut outer_key, mut outer_value) = (None, None);
    for (a, b) in &conditions {
        let (Expr::Column(a), Expr::Column(b)) = (a, b) else { return Ok(None) };
        let (mine, theirs) = if agg_side.schema().has_column(b) && outer.schema().has_column(a) {
            (b, a)
        } else if agg_side.schema().has_column(a) && outer.schema().has_column(b) {
            (a, b)
        } else {
            return Ok(None);
        };
        let slot = if *mine == g.key_out {
            &mut outer_key
        } else if *mine == g.agg_out {
            &mut outer_value
        } else {
            return Ok(None);
        };
        if slot.replace(theirs.clone()).is_some() {
            return Ok(None);
        }
    }
    let (Some(outer_key), Some(outer_value)) = (outer_key, outer_value) else { return Ok(None) };
    if outer_value != g.arg {
        return Ok(None);
    }

    // Both sides as scans and conjuncts. The outer query must have other
    // tables too (`key_peers` below are their columns).
    let (Some((sub_tables, sub_preds)), Some((out_tables, out_preds))) = (flattened(&g.input, true), flattened(outer, false)) else {
        return Ok(None);
    };
    if !sub_tables.is_subset(&out_tables) {
        return Ok(None);
    }
    if g.key.relation.as_ref().is_none_or(|r| !sub_tables.contains(r)) || g.arg.relation.as_ref().is_none_or(|r| !sub_tables.contains(r)) {
        return Ok(None);
    }
    let sub = |c: &Column| c.relation.as_ref().is_some_and(|r| sub_tables.contains(r));
    let mut outer_sub_preds = BTreeSet::new();
    let mut key_peers: HashSet<Column> = HashSet::new();
    for (text, pred) in &out_preds {
        let columns = pred.column_refs();
        if columns.iter().any(|c| c.relation.is_none()) {
            return Ok(None);
        }
        let in_sub = columns.iter().filter(|c| sub(c)).count();
        if in_sub == 0 {
            continue;
        }
        if in_sub == columns.len() {
            outer_sub_preds.insert(text.clone());
            continue;
        }
        // Across: only `k = column of R`.
        match pred {
            Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) => match (left.as_ref(), right.as_ref()) {
                (Expr::Column(a), Expr::Column(b)) if *a == g.key && !sub(b) => {
                    key_peers.insert(b.clone());
                }
                (Expr::Column(a), Expr::Column(b)) if *b == g.key && !sub(a) => {
                    key_peers.insert(a.clone());
                }
                _ => return Ok(None),
            },
            _ => return Ok(None),
        }
    }
    let sub_texts: BTreeSet<String> = sub_preds.into_keys().collect();
    if outer_sub_preds != sub_texts || key_peers.is_empty() {
        return Ok(None);
    }
    if outer_key != g.key && !key_peers.contains(&outer_key) {
        return Ok(None);
    }

    // The window over the outer rows, the comparison, and the join's
    // columns back.
    let mut window = WindowFunction::new(WindowFunctionDefinition::AggregateUDF(g.func.clone()), vec![Expr::Column(g.arg.clone())]);
    window.params.partition_by = vec![Expr::Column(outer_key.clone())];
    let window = Expr::from(window).alias(WINDOW);
    let windowed = LogicalPlanBuilder::from(outer.as_ref().clone())
        .window(vec![window])?
        .filter(Expr::Column(outer_value.clone()).eq(Expr::Column(Column::from_name(WINDOW))))?
        .build()?;
    let outer_columns = || outer.schema().columns().into_iter().map(Expr::Column).collect::<Vec<_>>();
    let agg_columns = || {
        agg_side
            .schema()
            .iter()
            .map(|(q, f)| {
                let c = Column::new(q.cloned(), f.name());
                let from = if c == g.key_out { Expr::Column(outer_key.clone()) } else { Expr::Column(Column::from_name(WINDOW)) };
                from.alias_qualified(q.cloned(), f.name())
            })
            .collect::<Vec<_>>()
    };
    let exprs = match join.join_type {
        JoinType::Inner if grouped_right => [outer_columns(), agg_columns()].concat(),
        JoinType::Inner => [agg_columns(), outer_columns()].concat(),
        _ => outer_columns(),
    };
    let rewritten = LogicalPlanBuilder::from(windowed).project(exprs)?.build()?;
    Ok(same_columns(rewritten.schema(), &join.schema).then_some(rewritten))
}

/// TPC-H Q11's shape: groups kept when their SUM (MIN, MAX) passes a
/// bound computed from the same aggregate over all rows of the same
/// tables, joins and filters,
///
/// ```text
/// Filter(p(s, (SELECT g(sum(x)) FROM <the same FROM and WHERE>))) over Aggregate(k; s = sum(x)) over O
///   =  Filter(p(s, g(w))) over Window(w = sum(s) OVER ()) over Aggregate(k; s = sum(x)) over O
/// ```
///
/// as the total of the groups' sums is the sum of all rows (and the
/// least of their minimums the minimum). The subquery must be
/// uncorrelated, an aggregation without groups of one aggregate equal to
/// one of the outer aggregation's, under at most a projection; both
/// inputs must flatten to the same scans and conjuncts.
fn rewrite_total(filter: &datafusion::logical_expr::Filter) -> Result<Option<LogicalPlan>> {
    let LogicalPlan::Aggregate(outer) = filter.input.as_ref() else { return Ok(None) };
    if outer.group_expr.is_empty() || outer.group_expr.iter().any(|e| matches!(e, Expr::GroupingSet(_))) {
        return Ok(None);
    }
    let mut subqueries = Vec::new();
    filter.predicate.apply(|e| {
        if let Expr::ScalarSubquery(sq) = e {
            subqueries.push(sq.clone());
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })?;
    let [sq] = subqueries.as_slice() else { return Ok(None) };
    if !sq.outer_ref_columns.is_empty() {
        return Ok(None);
    }
    // The subquery: [Projection of one expression] over Aggregate().
    let (projected, total) = match sq.subquery.as_ref() {
        LogicalPlan::Projection(p) if p.expr.len() == 1 => (Some(p.expr[0].clone()), p.input.as_ref()),
        other => (None, other),
    };
    let LogicalPlan::Aggregate(total) = total else { return Ok(None) };
    if !total.group_expr.is_empty() || total.aggr_expr.len() != 1 {
        return Ok(None);
    }
    let aggregate = total.aggr_expr[0].clone().unalias();
    let Expr::AggregateFunction(AggregateFunction { func, params }) = &aggregate else { return Ok(None) };
    if params.distinct || params.filter.is_some() || !params.order_by.is_empty() || !matches!(func.name(), "sum" | "min" | "max") {
        return Ok(None);
    }
    let Some(position) = outer.aggr_expr.iter().position(|e| e.clone().unalias() == aggregate) else { return Ok(None) };
    let (Some((sub_tables, sub_preds)), Some((out_tables, out_preds))) = (flattened(&total.input, false), flattened(&outer.input, false))
    else {
        return Ok(None);
    };
    if sub_tables != out_tables || sub_preds.keys().ne(out_preds.keys()) {
        return Ok(None);
    }

    // The groups' aggregate column, totalled by a window over all groups
    // and cast to the subquery's type.
    let groups = filter.input.schema();
    let column = Column::from(groups.qualified_field(outer.group_expr.len() + position));
    let total_schema = total.schema.as_ref();
    let total_column = Column::from(total_schema.qualified_field(0));
    let total_type = total_schema.field(0).data_type().clone();
    let window = Expr::from(WindowFunction::new(WindowFunctionDefinition::AggregateUDF(func.clone()), vec![Expr::Column(column)])).alias(WINDOW);
    let window_value = Expr::Cast(datafusion::logical_expr::Cast::new(Box::new(Expr::Column(Column::from_name(WINDOW))), total_type));
    let bound = match projected {
        None => window_value,
        Some(e) => e
            .unalias()
            .transform(|e| match e {
                Expr::Column(c) if c == total_column => Ok(Transformed::yes(window_value.clone())),
                other => Ok(Transformed::no(other)),
            })?
            .data,
    };
    let predicate = filter
        .predicate
        .clone()
        .transform(|e| match e {
            Expr::ScalarSubquery(_) => Ok(Transformed::yes(bound.clone())),
            other => Ok(Transformed::no(other)),
        })?
        .data;
    let rewritten = LogicalPlanBuilder::from(filter.input.as_ref().clone())
        .window(vec![window])?
        .filter(predicate)?
        .project(groups.columns().into_iter().map(Expr::Column))?
        .build()?;
    Ok(same_columns(rewritten.schema(), groups).then_some(rewritten))
}

/// The rewritten plan gives the replaced node's columns: names,
/// qualifiers and types.
fn same_columns(a: &datafusion::common::DFSchema, b: &datafusion::common::DFSchema) -> bool {
    a.fields().len() == b.fields().len()
        && a.iter().zip(b.iter()).all(|((q1, f1), (q2, f2))| q1 == q2 && f1.name() == f2.name() && f1.data_type() == f2.data_type())
}

/// `plan` as an aggregation grouped by one plain column with one MIN or
/// MAX of a plain column, under projections of plain columns and aliases.
fn grouped(plan: &LogicalPlan) -> Option<Grouped> {
    let schema = plan.schema();
    if schema.fields().len() != 2 {
        return None;
    }
    let outputs: Vec<Column> = schema.columns();
    let mut node = plan;
    let mut cols = outputs.clone();
    let agg: &Aggregate = loop {
        match node {
            LogicalPlan::SubqueryAlias(a) => {
                cols = cols
                    .iter()
                    .map(|c| Some(Column::from(a.input.schema().qualified_field(node.schema().index_of_column(c).ok()?))))
                    .collect::<Option<_>>()?;
                node = &a.input;
            }
            LogicalPlan::Projection(p) => {
                cols = cols
                    .iter()
                    .map(|c| match p.expr.get(node.schema().index_of_column(c).ok()?)?.clone().unalias() {
                        Expr::Column(c) => Some(c),
                        _ => None,
                    })
                    .collect::<Option<_>>()?;
                node = &p.input;
            }
            LogicalPlan::Aggregate(a) => break a,
            _ => return None,
        }
    };
    if agg.group_expr.len() != 1 || agg.aggr_expr.len() != 1 {
        return None;
    }
    // The output column computed by the aggregation's `i`th column.
    let output_of = |i: usize| {
        outputs.iter().zip(&cols).find(|(_, c)| agg.schema.index_of_column(c).ok() == Some(i)).map(|(out, _)| out.clone())
    };
    let (key_out, agg_out) = (output_of(0)?, output_of(1)?);
    let Expr::Column(key) = agg.group_expr[0].clone().unalias() else { return None };
    let Expr::AggregateFunction(AggregateFunction { func, params }) = agg.aggr_expr[0].clone().unalias() else { return None };
    let AggregateFunctionParams { args, distinct: false, filter: None, order_by, null_treatment: None } = params else {
        return None;
    };
    if !order_by.is_empty() || !matches!(func.name(), "min" | "max") {
        return None;
    }
    let [Expr::Column(arg)] = args.as_slice() else { return None };
    Some(Grouped { key_out, agg_out, key, arg: arg.clone(), func, input: agg.input.clone() })
}

/// The tables and conjuncts (by their text) of `plan`, when [`flatten`]
/// takes it and no table is read twice.
fn flattened(plan: &LogicalPlan, subquery: bool) -> Option<(HashSet<TableReference>, BTreeMap<String, Expr>)> {
    let (mut tables, mut preds) = (Vec::new(), BTreeMap::new());
    if !flatten(plan, subquery, &mut tables, &mut preds) {
        return None;
    }
    let unique: HashSet<TableReference> = tables.iter().cloned().collect();
    (unique.len() == tables.len()).then_some((unique, preds))
}

/// Collects the scans and conjuncts of a tree of inner joins, filters and
/// projections of plain columns; false when it meets anything else.
/// `subquery` says the tree is the subquery's: its semi joins with the
/// outer query's keys are passed over.
fn flatten(plan: &LogicalPlan, subquery: bool, tables: &mut Vec<TableReference>, preds: &mut BTreeMap<String, Expr>) -> bool {
    let add = |e: &Expr, preds: &mut BTreeMap<String, Expr>| -> bool {
        if !crate::subquery_keys::repeatable(e) {
            return false;
        }
        let e = canonical(e);
        preds.insert(e.to_string(), e);
        true
    };
    match plan {
        LogicalPlan::TableScan(scan) => {
            if scan.fetch.is_some() {
                return false;
            }
            tables.push(scan.table_name.clone());
            scan.filters.iter().all(|f| split_conjunction(f).into_iter().all(|c| add(c, preds)))
        }
        LogicalPlan::Filter(f) => {
            split_conjunction(&f.predicate).into_iter().all(|c| add(c, preds)) && flatten(&f.input, subquery, tables, preds)
        }
        LogicalPlan::Projection(p) => p.expr.iter().all(|e| matches!(e, Expr::Column(_))) && flatten(&p.input, subquery, tables, preds),
        LogicalPlan::Join(j) if subquery && j.join_type == JoinType::LeftSemi && crate::subquery_keys::is_keys(&j.right) => {
            flatten(&j.left, subquery, tables, preds)
        }
        LogicalPlan::Join(j) => {
            if j.join_type != JoinType::Inner || j.null_equality != NullEquality::NullEqualsNothing || j.null_aware {
                return false;
            }
            for (l, r) in &j.on {
                if !add(&l.clone().eq(r.clone()), preds) {
                    return false;
                }
            }
            if let Some(filter) = &j.filter
                && !split_conjunction(filter).into_iter().all(|c| add(c, preds))
            {
                return false;
            }
            flatten(&j.left, subquery, tables, preds) && flatten(&j.right, subquery, tables, preds)
        }
        _ => false,
    }
}

/// An equality with its sides in a fixed order, so that `a = b` and
/// `b = a` compare equal.
fn canonical(e: &Expr) -> Expr {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) if left.to_string() > right.to_string() => {
            Expr::BinaryExpr(BinaryExpr { left: right.clone(), op: Operator::Eq, right: left.clone() })
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_plans::{context_with_rule, int64_table as table, rows_and_logical_plan as run};
    use datafusion::prelude::SessionContext;

    fn context(rule: bool) -> SessionContext {
        let ctx = context_with_rule(rule.then(|| Arc::new(SubqueryAsWindow) as _));
        // part(p_key, p_size): 200 parts, part 7 twice (a key that is not
        // unique); offer(o_part, o_supp, o_cost): three offers per part,
        // some costs NULL and some tied; supp(s_key, s_region).
        let mut parts: Vec<i64> = (0..200).collect();
        parts.push(7);
        ctx.register_table(
            "part",
            table(vec![("p_key", parts.iter().map(|p| Some(*p)).collect()), ("p_size", parts.iter().map(|p| Some(p % 7)).collect())]),
        )
        .unwrap();
        let offer_part = (0..600).map(|i| Some(i / 3)).collect();
        let offer_supp = (0..600).map(|i| Some((i * 7) % 10)).collect();
        let offer_cost = (0..600).map(|i| if i % 17 == 0 { None } else { Some((i * 37) % 23) }).collect();
        ctx.register_table("offer", table(vec![("o_part", offer_part), ("o_supp", offer_supp), ("o_cost", offer_cost)])).unwrap();
        ctx.register_table(
            "supp",
            table(vec![("s_key", (0..10).map(Some).collect()), ("s_region", (0..10).map(|s| Some(s % 2)).collect())]),
        )
        .unwrap();
        ctx
    }

    /// Each query answers the same with and without the rule and finds
    /// more than `lines` lines; with `rewritten`, the plan has the window
    /// and not that operator any more, otherwise no window.
    async fn check(queries: &[&str], lines: usize, rewritten: Option<&str>) {
        for sql in queries {
            let (want, _) = run(&context(false), sql).await;
            let (got, plan) = run(&context(true), sql).await;
            assert_eq!(got, want, "{sql}\n{plan}");
            assert!(want.lines().count() > lines, "the query must find rows: {want}");
            match rewritten {
                Some(gone) => assert!(plan.contains(WINDOW) && !plan.contains(gone), "{sql}\n{plan}"),
                None => assert!(!plan.contains(WINDOW), "{sql}\n{plan}"),
            }
        }
    }

    #[tokio::test]
    async fn subqueries_over_the_outer_tables_become_windows_with_the_same_answers() {
        let applies = [
            // Q2's shape: the cheapest offers of the region, per part kept.
            "SELECT p_key, o_supp, o_cost FROM part, offer, supp WHERE p_key = o_part AND o_supp = s_key AND p_size = 3 \
             AND s_region = 1 AND o_cost = (SELECT min(o_cost) FROM offer, supp WHERE o_part = p_key AND o_supp = s_key AND s_region = 1) \
             ORDER BY p_key, o_supp",
            // The dearest, with the key of the subquery's table compared,
            // the conditions written in another order, and a duplicated part.
            "SELECT p_key, p_size, o_supp, o_cost FROM offer, supp, part WHERE s_key = o_supp AND o_part = p_key AND p_size IN (0, 3) \
             AND s_region = 0 AND o_cost = (SELECT max(o_cost) FROM supp, offer WHERE s_region = 0 AND s_key = o_supp AND p_key = o_part) \
             ORDER BY p_key, p_size, o_supp",
        ];
        check(&applies, 20, Some("Aggregate")).await;
        // Left alone: a filter of the outer query the subquery does not
        // have, one of the subquery the outer query does not have, an
        // average, and a comparison other than equality.
        let left = [
            "SELECT p_key, o_supp, o_cost FROM part, offer, supp WHERE p_key = o_part AND o_supp = s_key AND p_size = 3 AND o_supp < 8 \
             AND s_region = 1 AND o_cost = (SELECT min(o_cost) FROM offer, supp WHERE o_part = p_key AND o_supp = s_key AND s_region = 1) \
             ORDER BY p_key, o_supp",
            "SELECT p_key, o_supp, o_cost FROM part, offer, supp WHERE p_key = o_part AND o_supp = s_key AND p_size = 3 \
             AND o_cost = (SELECT min(o_cost) FROM offer, supp WHERE o_part = p_key AND o_supp = s_key AND s_region = 1) \
             ORDER BY p_key, o_supp",
            "SELECT p_key, o_supp, o_cost FROM part, offer WHERE p_key = o_part AND p_size = 3 \
             AND o_cost = (SELECT avg(o_cost) FROM offer WHERE o_part = p_key) ORDER BY p_key, o_supp",
            "SELECT p_key, o_supp, o_cost FROM part, offer WHERE p_key = o_part AND p_size = 3 \
             AND o_cost > (SELECT min(o_cost) FROM offer WHERE o_part = p_key) ORDER BY p_key, o_supp",
        ];
        check(&left, 4, None).await;
    }

    #[tokio::test]
    async fn totals_over_the_same_rows_as_the_groups_become_windows_with_the_same_answers() {
        let applies = [
            // Q11's shape: parts whose offers' value is a share of the total.
            "SELECT o_part, sum(o_cost * o_supp) v FROM offer, supp WHERE o_supp = s_key AND s_region = 1 GROUP BY o_part \
             HAVING sum(o_cost * o_supp) > (SELECT sum(o_cost * o_supp) * 0.006 FROM offer, supp WHERE o_supp = s_key AND s_region = 1) \
             ORDER BY v DESC, o_part",
            // A maximum, compared without a projection over it.
            "SELECT o_part, max(o_cost) FROM offer, supp WHERE s_key = o_supp AND s_region = 0 GROUP BY o_part \
             HAVING max(o_cost) = (SELECT max(o_cost) FROM supp, offer WHERE o_supp = s_key AND s_region = 0) ORDER BY o_part",
        ];
        check(&applies, 6, Some("Subquery")).await;
        // Left alone: a subquery over other rows, and a count (a count of
        // counts is not the count).
        let left = [
            "SELECT o_part, sum(o_cost) v FROM offer, supp WHERE o_supp = s_key AND s_region = 1 GROUP BY o_part \
             HAVING sum(o_cost) > (SELECT sum(o_cost) * 0.004 FROM offer, supp WHERE o_supp = s_key) ORDER BY v DESC, o_part",
            "SELECT o_part, count(*) FROM offer, supp WHERE o_supp = s_key AND s_region = 1 GROUP BY o_part \
             HAVING count(*) * 300 > (SELECT count(*) FROM offer, supp WHERE o_supp = s_key AND s_region = 1) ORDER BY o_part",
        ];
        check(&left, 4, None).await;
    }
}
