//! Aggregation below a join that the plan does first ("eager aggregation
//! with join reordering").
//!
//! TPC-H Q10 sums lineitem's revenue per customer and groups it by seven
//! of the customer's columns (name, address, comment, ...) and the
//! nation's name. DataFusion joins `customer` with the quarter's `orders`
//! first, then probes `lineitem` with that join's rows: every one of the
//! 1.15M joined lineitem rows (SF 10) carries the customer's text, which
//! is copied into the join's output and hashed again to group it.
//! Summed per order's customer first (`lineitem ⋈ orders`, grouped by
//! `o_custkey`: 381K rows of partial sums), the customers are joined to
//! those sums, and the text is copied and grouped once per customer.
//!
//! [`reassociate`] takes a partial aggregation over a tree of inner hash
//! joins and splits the tree's inputs in two:
//! * S: the inputs the aggregates read, and the inputs reached from them
//!   through joins with inputs that hold no grouping column;
//! * R: the rest, which must be whole tables (a Parquet or loaded table's
//!   scan without a filter, so that joining them later cannot have made
//!   the S joins smaller).
//!
//! S's inputs are joined as the plan joined them (R's inputs left out), a
//! partial aggregation groups their rows by S's side of each join with R
//! and by the grouping expressions over S, and R's inputs are joined to
//! those groups; a state-merging aggregation (`PartialReduce`) over that
//! gives the states the original partial aggregation gave. Inner equi-joins
//! may be joined in any order, and a partial state joined to m rows of R is
//! merged m times, as each of its rows would have been aggregated m times:
//! the answers are the same for every decomposable aggregate.
//!
//! It applies when the statistics bound the groups of the aggregation
//! below to at most 1/[`MIN_REDUCTION`] of the estimated rows of S's
//! largest input (Q10 at SF 10: `o_custkey` takes at most 1.5M values,
//! against an estimated 12M `lineitem` rows after its filter; Q9's
//! `l_orderkey` is bounded only by `lineitem`'s rows, and Q9 keeps its
//! plan). `LAKEWAVE_EAGER_AGGREGATION=off` turns it off with the rest of
//! eager aggregation.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{JoinType, NullEquality, Result};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode, PhysicalGroupBy};
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
use datafusion::physical_plan::ExecutionPlan;

use crate::eager_agg::distinct_bound;

/// How many rows of S's largest input per estimated group below. Lower
/// than the single join's [`crate::eager_agg::MIN_REDUCTION`]: besides
/// the rows aggregated away, the rewrite keeps R's columns (often text)
/// out of S's joins, and groups by them once per group below instead of
/// once per joined row.
pub const MIN_REDUCTION: u64 = 4;

/// A column of one of the join tree's inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Col {
    input: usize,
    column: usize,
}

/// The join tree with its projections folded into column mappings.
enum Node {
    Input(usize),
    Join {
        left: Box<Node>,
        right: Box<Node>,
        on: Vec<(Col, Col)>,
        mode: PartitionMode,
        nulls: NullEquality,
    },
}

/// An equality of two inputs' columns, from a join of the tree.
struct Edge {
    build: Col,
    probe: Col,
    nulls: NullEquality,
}

#[derive(Default)]
struct Tree {
    inputs: Vec<Arc<dyn ExecutionPlan>>,
    edges: Vec<Edge>,
}

impl Tree {
    /// `plan` as a node, and its output columns as inputs' columns.
    fn add(&mut self, plan: &Arc<dyn ExecutionPlan>) -> (Node, Vec<Col>) {
        if let Some(join) = plan.downcast_ref::<HashJoinExec>()
            && *join.join_type() == JoinType::Inner
            && join.filter().is_none()
            && join.fetch().is_none()
            && !join.null_aware
            && join.on().iter().all(|(l, r)| l.downcast_ref::<Column>().is_some() && r.downcast_ref::<Column>().is_some())
        {
            let (left, lcols) = self.add(join.left());
            let (right, rcols) = self.add(join.right());
            let mut on = Vec::new();
            for (l, r) in join.on() {
                let (Some(l), Some(r)) = (l.downcast_ref::<Column>(), r.downcast_ref::<Column>()) else { unreachable!() };
                let pair = (lcols[l.index()], rcols[r.index()]);
                self.edges.push(Edge { build: pair.0, probe: pair.1, nulls: join.null_equality() });
                on.push(pair);
            }
            let all: Vec<Col> = lcols.into_iter().chain(rcols).collect();
            let out = match &join.projection {
                Some(p) => p.iter().map(|&i| all[i]).collect(),
                None => all,
            };
            let node = Node::Join { left: Box::new(left), right: Box::new(right), on, mode: *join.partition_mode(), nulls: join.null_equality() };
            return (node, out);
        }
        if let Some(p) = plan.downcast_ref::<ProjectionExec>()
            && p.expr().iter().all(|e| e.expr.downcast_ref::<Column>().is_some())
        {
            let (node, cols) = self.add(p.input());
            let out = p.expr().iter().map(|e| cols[e.expr.downcast_ref::<Column>().map_or(0, Column::index)]).collect();
            return (node, out);
        }
        let input = self.inputs.len();
        self.inputs.push(Arc::clone(plan));
        (Node::Input(input), self.columns(input))
    }

    /// The columns of input `input`.
    fn columns(&self, input: usize) -> Vec<Col> {
        (0..self.inputs[input].schema().fields().len()).map(|column| Col { input, column }).collect()
    }

    /// The join of `node`'s inputs in `keep`, joined as `node` joins them,
    /// each join giving only the columns in `needed` and those the joins
    /// above it read: the plan and its output columns. Ok(None) when no
    /// input is kept; Err(()) when two kept parts are joined only through
    /// inputs left out.
    #[allow(clippy::type_complexity)]
    fn restrict(&self, node: &Node, keep: &HashSet<usize>, needed: &HashSet<Col>) -> Result<Option<(Arc<dyn ExecutionPlan>, Vec<Col>)>, ()> {
        match node {
            Node::Input(i) => Ok(keep.contains(i).then(|| (Arc::clone(&self.inputs[*i]), self.columns(*i)))),
            Node::Join { left, right, on, mode, nulls } => {
                let mut below = needed.clone();
                below.extend(on.iter().flat_map(|(a, b)| [*a, *b]));
                let l = self.restrict(left, keep, &below)?;
                let r = self.restrict(right, keep, &below)?;
                let ((lp, lc), (rp, rc)) = match (l, r) {
                    (None, x) | (x, None) => return Ok(x),
                    (Some(l), Some(r)) => (l, r),
                };
                let on: Vec<(Arc<dyn PhysicalExpr>, Arc<dyn PhysicalExpr>)> = on
                    .iter()
                    .filter_map(|(a, b)| Some((column(&lp, lc.iter().position(|c| c == a)?), column(&rp, rc.iter().position(|c| c == b)?))))
                    .collect();
                if on.is_empty() {
                    return Err(());
                }
                let all: Vec<Col> = lc.into_iter().chain(rc).collect();
                let kept: Vec<usize> = (0..all.len()).filter(|&i| needed.contains(&all[i])).collect();
                let out = kept.iter().map(|&i| all[i]).collect();
                let join = HashJoinExec::try_new(lp, rp, on, None, &JoinType::Inner, Some(kept), *mode, *nulls, false).map_err(|_| ())?;
                Ok(Some((Arc::new(join), out)))
            }
        }
    }
}

fn column(plan: &Arc<dyn ExecutionPlan>, at: usize) -> Arc<dyn PhysicalExpr> {
    Arc::new(Column::new(plan.schema().field(at).name(), at))
}

/// The inputs' columns `e` reads (`cols`: the tree's output columns).
fn columns_read(e: &Arc<dyn PhysicalExpr>, cols: &[Col]) -> Vec<Col> {
    let mut seen = Vec::new();
    let _ = Arc::clone(e).apply(|x| {
        if let Some(c) = x.downcast_ref::<Column>() {
            seen.push(cols[c.index()]);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    seen
}

/// The inputs whose columns `e` reads.
fn inputs_of(e: &Arc<dyn PhysicalExpr>, cols: &[Col]) -> HashSet<usize> {
    columns_read(e, cols).into_iter().map(|c| c.input).collect()
}

/// `e` over the tree's output columns `cols`, over a plan whose output
/// columns are `to` (each column `e` reads must be there).
fn remap(e: &Arc<dyn PhysicalExpr>, cols: &[Col], to: &[Col], schema: &datafusion::arrow::datatypes::Schema) -> Result<Arc<dyn PhysicalExpr>> {
    Arc::clone(e)
        .transform_up(|x| match x.downcast_ref::<Column>() {
            Some(c) => {
                let at = to.iter().position(|t| *t == cols[c.index()]).ok_or_else(|| {
                    datafusion::common::DataFusionError::Internal("eager aggregation lost a column".to_string())
                })?;
                Ok(Transformed::yes(Arc::new(Column::new(schema.field(at).name(), at)) as _))
            }
            None => Ok(Transformed::no(x)),
        })
        .data()
}

/// A scan of a whole table: a file scan with no filter of its own, or a
/// loaded table's scan without filter or limit.
fn whole_table(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let file_scan = plan
        .downcast_ref::<DataSourceExec>()
        .and_then(|e| e.data_source().downcast_ref::<FileScanConfig>())
        .is_some_and(|scan| scan.file_source().filter().is_none());
    file_scan || crate::rapid::scan::whole_table(plan)
}

/// Where a column of the plan being built comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    /// An input's column (a pre-aggregation key is S's side of a join with R).
    Col(Col),
    /// The i-th grouping expression over S.
    Group(usize),
    /// A state of the aggregates.
    State,
}

/// The rewrite described in the module for `partial` (a partial
/// aggregation whose expressions are `groups` and `args` over `top`'s
/// output, projections above `top` already inlined): the state-merging
/// aggregation that replaces `partial`. None when the plan does not have
/// that shape or the statistics do not promise a reduction.
pub(crate) fn reassociate(
    partial: &AggregateExec,
    top: &Arc<dyn ExecutionPlan>,
    groups: &[(Arc<dyn PhysicalExpr>, String)],
    args: &[Vec<Arc<dyn PhysicalExpr>>],
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if top.downcast_ref::<HashJoinExec>().is_none() {
        return Ok(None);
    }
    let mut tree = Tree::default();
    let (root, cols) = tree.add(top);
    let n = tree.inputs.len();
    if n < 3 {
        return Ok(None);
    }
    let read: HashSet<usize> = args.iter().flatten().flat_map(|a| inputs_of(a, &cols)).collect();
    let grouped: Vec<HashSet<usize>> = groups.iter().map(|(e, _)| inputs_of(e, &cols)).collect();
    let group_inputs: HashSet<usize> = grouped.iter().flatten().copied().collect();
    if read.is_empty() {
        return Ok(None);
    }
    // S: from the inputs read, through joins with inputs that hold no
    // grouping column.
    let mut s = read.clone();
    loop {
        let before = s.len();
        for e in &tree.edges {
            for (a, b) in [(e.build.input, e.probe.input), (e.probe.input, e.build.input)] {
                if s.contains(&a) && !s.contains(&b) && !group_inputs.contains(&b) {
                    s.insert(b);
                }
            }
        }
        if s.len() == before {
            break;
        }
    }
    let r: Vec<usize> = (0..n).filter(|i| !s.contains(i)).collect();
    if s.len() < 2 || r.is_empty() || !r.iter().all(|&i| whole_table(&tree.inputs[i])) {
        return Ok(None);
    }
    // Each grouping expression reads S only (computed below) or R only
    // (above).
    let mut below_groups = Vec::new();
    for (i, inputs) in grouped.iter().enumerate() {
        if !inputs.is_empty() && inputs.is_subset(&s) {
            below_groups.push(i);
        } else if inputs.iter().any(|x| s.contains(x)) {
            return Ok(None);
        }
    }
    if below_groups.len() == groups.len() {
        return Ok(None); // nothing is grouped by R: the plain rule's case
    }
    // The pre-aggregation's keys: S's side of each join with R.
    let mut keys: Vec<Col> = Vec::new();
    for e in &tree.edges {
        for (a, b) in [(e.build, e.probe), (e.probe, e.build)] {
            if s.contains(&a.input) && !s.contains(&b.input) && !keys.contains(&a) {
                keys.push(a);
            }
        }
    }
    if !reduces(&tree, &s, &keys, &below_groups, groups, &cols)? {
        return Ok(None);
    }
    let mut needed: HashSet<Col> = keys.iter().copied().collect();
    for e in below_groups.iter().map(|&g| &groups[g].0).chain(args.iter().flatten()) {
        needed.extend(columns_read(e, &cols));
    }
    let Ok(Some((joined, jcols))) = tree.restrict(&root, &s, &needed) else { return Ok(None) };
    let jschema = joined.schema();

    // Partial aggregation of S's rows.
    let mut by: Vec<(Arc<dyn PhysicalExpr>, String)> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let at = jcols.iter().position(|c| c == k).expect("a key of S is among S's columns");
        by.push((column(&joined, at), format!("__lakewave_key{i}")));
    }
    for (i, &g) in below_groups.iter().enumerate() {
        by.push((remap(&groups[g].0, &cols, &jcols, &jschema)?, format!("__lakewave_group{i}")));
    }
    let mut aggregates = Vec::with_capacity(partial.aggr_expr().len());
    for (agg, args) in partial.aggr_expr().iter().zip(args) {
        let moved: Vec<_> = args.iter().map(|a| remap(a, &cols, &jcols, &jschema)).collect::<Result<_>>()?;
        let Some(moved) = agg.with_new_expressions(moved, vec![]) else { return Ok(None) };
        aggregates.push(Arc::new(moved));
    }
    let pre: Arc<dyn ExecutionPlan> = Arc::new(AggregateExec::try_new(
        AggregateMode::Partial,
        PhysicalGroupBy::new_single(by),
        aggregates,
        vec![None; partial.aggr_expr().len()],
        Arc::clone(&joined),
        jschema,
    )?);
    let mut slots: Vec<Slot> = keys.iter().map(|k| Slot::Col(*k)).collect();
    slots.extend((0..below_groups.len()).map(Slot::Group));
    slots.extend(std::iter::repeat_n(Slot::State, pre.schema().fields().len() - slots.len()));

    // R's inputs joined to the groups, each as the build side when the
    // plan built it, else as the probe of the rows so far.
    let mut current = pre;
    let mut joined_r: HashSet<usize> = HashSet::new();
    while joined_r.len() < r.len() {
        // The first R input joined to the rows so far: the pairs (column of
        // the input, column of the rows) of its joins with them, whether
        // the plan built it, and the first join's NULL equality.
        let connection = |i: usize| {
            let mut pairs: Vec<(usize, usize)> = Vec::new();
            let mut first = None;
            for e in &tree.edges {
                let (mine, other, build) = if e.build.input == i {
                    (e.build, e.probe, true)
                } else if e.probe.input == i {
                    (e.probe, e.build, false)
                } else {
                    continue;
                };
                let Some(at) = slots.iter().position(|s| *s == Slot::Col(other)) else { continue };
                first.get_or_insert((build, e.nulls));
                pairs.push((mine.column, at));
            }
            first.map(|(as_build, nulls)| (i, pairs, as_build, nulls))
        };
        let next = r.iter().copied().filter(|i| !joined_r.contains(i)).find_map(connection);
        let Some((i, pairs, as_build, nulls)) = next else { return Ok(None) };
        let input = Arc::clone(&tree.inputs[i]);
        let input_slots: Vec<Slot> = tree.columns(i).into_iter().map(Slot::Col).collect();
        let (join, new_slots) = if as_build {
            let on = pairs.iter().map(|&(m, o)| (column(&input, m), column(&current, o))).collect();
            let join = HashJoinExec::try_new(input, current, on, None, &JoinType::Inner, None, PartitionMode::CollectLeft, nulls, false)?;
            (join, input_slots.into_iter().chain(slots).collect::<Vec<_>>())
        } else {
            let on = pairs.iter().map(|&(m, o)| (column(&current, o), column(&input, m))).collect();
            let join = HashJoinExec::try_new(current, input, on, None, &JoinType::Inner, None, PartitionMode::CollectLeft, nulls, false)?;
            (join, slots.into_iter().chain(input_slots).collect::<Vec<_>>())
        };
        current = Arc::new(join);
        slots = new_slots;
        joined_r.insert(i);
    }

    // The partial's layout over that: its grouping values, then the states.
    let schema = current.schema();
    let out_cols: Vec<Col> = slots.iter().map(|s| if let Slot::Col(c) = s { *c } else { Col { input: usize::MAX, column: 0 } }).collect();
    let mut exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = Vec::new();
    for (i, (e, name)) in groups.iter().enumerate() {
        let expr = match below_groups.iter().position(|&g| g == i) {
            Some(k) => {
                let at = slots.iter().position(|s| *s == Slot::Group(k)).expect("every group below is joined");
                column(&current, at)
            }
            None => remap(e, &cols, &out_cols, &schema)?,
        };
        exprs.push((expr, name.clone()));
    }
    let states: Vec<usize> = slots.iter().enumerate().filter(|(_, s)| **s == Slot::State).map(|(i, _)| i).collect();
    let partial_schema = partial.schema();
    for (field, &at) in partial_schema.fields().iter().skip(groups.len()).zip(&states) {
        if schema.field(at).data_type() != field.data_type() {
            return Ok(None);
        }
        exprs.push((column(&current, at), field.name().clone()));
    }
    crate::eager_agg::merging(partial, exprs, current)
}

/// Whether the statistics bound the pre-aggregation's groups (the `keys`
/// and the grouping expressions over S) to at most 1/[`MIN_REDUCTION`] of
/// the rows of S's largest input.
fn reduces(
    tree: &Tree,
    s: &HashSet<usize>,
    keys: &[Col],
    below_groups: &[usize],
    groups: &[(Arc<dyn PhysicalExpr>, String)],
    cols: &[Col],
) -> Result<bool> {
    let mut stats = HashMap::new();
    let mut statistics = |input: usize| -> Option<Arc<datafusion::common::Statistics>> {
        if let Some(s) = stats.get(&input) {
            return Some(Arc::clone(s));
        }
        let s = StatisticsContext::new().compute(tree.inputs[input].as_ref(), &StatisticsArgs::new()).ok()?;
        stats.insert(input, Arc::clone(&s));
        Some(s)
    };
    let mut rows: u64 = 0;
    for &i in s {
        let Some(st) = statistics(i) else { return Ok(false) };
        rows = rows.max(st.num_rows.get_value().map_or(0, |r| *r as u64));
    }
    let mut bound: u64 = 1;
    let mut columns: Vec<Col> = keys.to_vec();
    for &g in below_groups {
        let e = crate::uncast(&groups[g].0);
        let Some(c) = e.downcast_ref::<Column>() else { return Ok(false) };
        columns.push(cols[c.index()]);
    }
    for c in columns {
        let Some(st) = statistics(c.input) else { return Ok(false) };
        let plan = &tree.inputs[c.input];
        let Some(n) = distinct_bound(plan, &st, &column(plan, c.column)) else { return Ok(false) };
        bound = bound.saturating_mul(n);
    }
    Ok(rows > 0 && bound.saturating_mul(MIN_REDUCTION) <= rows)
}

#[cfg(test)]
mod tests {
    use datafusion::dataframe::DataFrameWriteOptions;
    use datafusion::prelude::{ParquetReadOptions, SessionContext};

    /// Four tables shaped like TPC-H's lineitem, orders, customer and
    /// nation: 40,000 facts over 2,000 orders of 100 customers (customers
    /// 1..10 listed twice, some orders without a customer, some facts
    /// without a value) in 5 nations.
    async fn write_tables(dir: &std::path::Path) {
        let ctx = SessionContext::new();
        let tables = [
            ("facts", "SELECT CAST(value % 2000 + 1 AS BIGINT) AS ok, CASE WHEN value % 13 = 0 THEN NULL ELSE value END AS v, \
                       CAST(value % 97 AS DOUBLE) / 4 AS x FROM generate_series(1, 40000) AS g(value)"),
            ("orders", "SELECT CAST(value AS BIGINT) AS ok, CASE WHEN value % 29 = 0 THEN NULL ELSE CAST(value % 100 + 1 AS BIGINT) END AS cust \
                        FROM generate_series(1, 2000) AS g(value)"),
            ("customers", "SELECT CAST(CASE WHEN value > 100 THEN value - 100 ELSE value END AS BIGINT) AS cust, \
                           'customer ' || CAST(value AS VARCHAR) AS name, CAST(value % 5 AS BIGINT) AS nat \
                           FROM generate_series(1, 110) AS g(value)"),
            ("nations", "SELECT CAST(value AS BIGINT) AS nat, 'nation ' || CAST(value AS VARCHAR) AS nname FROM generate_series(0, 4) AS g(value)"),
        ];
        for (name, sql) in tables {
            let path = dir.join(format!("{name}.parquet"));
            ctx.sql(sql)
                .await
                .unwrap()
                .write_parquet(path.to_str().unwrap(), DataFrameWriteOptions::new().with_single_file_output(true), None)
                .await
                .unwrap();
        }
    }

    async fn run(dir: &std::path::Path, eager: bool, sql: &str) -> (String, String) {
        let ctx = crate::eager_agg::tests::context(eager);
        for t in ["facts", "orders", "customers", "nations"] {
            let path = dir.join(format!("{t}.parquet"));
            ctx.register_parquet(t, path.to_str().unwrap(), ParquetReadOptions::default()).await.unwrap();
        }
        crate::test_plans::rows_and_plan(&ctx, sql).await
    }

    /// Grouped by the customers' and nations' columns, the facts are
    /// summed per order's customer before the customers are joined, and
    /// every aggregate comes out as it does without the rewrite: listed
    /// twice, a customer's states are merged twice; orders without a
    /// customer join nothing.
    #[tokio::test]
    async fn facts_are_aggregated_before_the_dimensions_are_joined() {
        let dir = tempfile::tempdir().unwrap();
        write_tables(dir.path()).await;
        let queries = [
            "SELECT c.cust, c.name, n.nname, sum(f.v), count(*), count(f.v), min(f.v), max(f.x), avg(f.x) \
             FROM customers c, orders o, facts f, nations n \
             WHERE c.cust = o.cust AND f.ok = o.ok AND c.nat = n.nat \
             GROUP BY c.cust, c.name, n.nname ORDER BY 1, 2, 3",
            "SELECT n.nname, c.name, sum(f.v * 2) AS s FROM facts f JOIN orders o ON f.ok = o.ok \
             JOIN customers c ON c.cust = o.cust JOIN nations n ON n.nat = c.nat \
             WHERE f.x > 3 AND o.ok > 10 GROUP BY n.nname, c.name ORDER BY 1, 2",
        ];
        for q in queries {
            let (expected, before) = run(dir.path(), false, q).await;
            let (got, after) = run(dir.path(), true, q).await;
            assert!(!before.contains("PartialReduce"), "{q}\n{before}");
            assert!(after.contains("mode=PartialReduce"), "{q}\n{after}");
            // The facts are grouped by the orders' customer, below the join
            // that reads the customers' scan.
            let lines: Vec<&str> = after.lines().collect();
            let indent = |l: &str| l.len() - l.trim_start().len();
            let pre = lines.iter().position(|l| l.contains("mode=Partial, gby=[cust@") && l.contains("__lakewave_key0"));
            let Some(pre) = pre else { panic!("{q}\n{after}") };
            let below: Vec<&str> = lines[pre + 1..].iter().copied().take_while(|l| indent(l) > indent(lines[pre])).collect();
            assert!(below.iter().any(|l| l.contains("facts.parquet")) && below.iter().any(|l| l.contains("orders.parquet")), "{q}\n{after}");
            assert!(!below.iter().any(|l| l.contains("customers.parquet") || l.contains("nations.parquet")), "{q}\n{after}");
            assert_eq!(got, expected, "{q}");
            assert!(got.lines().count() > 20, "{got}");
        }
    }

    /// A filter on a table joined later may make the joins below smaller:
    /// the plan is kept, with the same answers.
    #[tokio::test]
    async fn filtered_dimensions_keep_the_plan() {
        let dir = tempfile::tempdir().unwrap();
        write_tables(dir.path()).await;
        let q = "SELECT c.name, n.nname, sum(f.v) FROM customers c, orders o, facts f, nations n \
                 WHERE c.cust = o.cust AND f.ok = o.ok AND c.nat = n.nat AND c.name LIKE '%1%' \
                 GROUP BY c.name, n.nname ORDER BY 1, 2";
        let (expected, _) = run(dir.path(), false, q).await;
        let (got, after) = run(dir.path(), true, q).await;
        assert!(!after.contains("__lakewave_key0"), "{after}");
        assert_eq!(got, expected);
    }
}
