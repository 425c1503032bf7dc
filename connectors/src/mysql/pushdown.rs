//! Joins and aggregates between MySQL tables run inside MySQL.
//!
//! An optimizer rule looks for the largest parts of a logical plan that read
//! only MySQL tables and contain a join or an aggregate, and replaces each
//! with one MySQL query whose result streams in like a table scan. The rest
//! of the plan (lake scans, joins with lake data) stays in the engine.
//!
//! Only what MySQL computes exactly as the engine would is pushed:
//! comparisons, grouping, join keys and MIN/MAX over text are left to the
//! engine (MySQL compares text by collation, usually case-insensitively);
//! integer division, casts that round differently and functions with other
//! semantics are not translated; FULL, semi and anti joins are not pushed.
//! Every generated query names its columns `c0..cN` by position, so the
//! nested SQL never depends on the plan's qualifiers.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, DFSchemaRef, JoinType, NullEquality};
use datafusion::datasource::source_as_provider;
use datafusion::error::Result;
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::expr::{AggregateFunction, AggregateFunctionParams};
use datafusion::logical_expr::logical_plan::{FetchType, SkipType};
use datafusion::logical_expr::{
    BinaryExpr, Expr, Extension, LogicalPlan, Operator, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};

use super::table::{MySqlScan, MySqlScanExec, MySqlTable, PushdownLog, comparison_or_logic, filter_sql, literal};

/// The optimizer rule; add it last so it sees filters and projections
/// already pushed into the scans.
#[derive(Debug, Default)]
pub struct MySqlSubtreePushdown;

impl OptimizerRule for MySqlSubtreePushdown {
    fn name(&self) -> &str {
        "mysql_subtree_pushdown"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        None
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        rewrite(plan)
    }
}

/// Top-down: the first node whose whole subtree MySQL can run (and that is
/// worth sending) is replaced; otherwise look further down.
fn rewrite(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    if joins_or_aggregates(&plan) {
        let mut sql = SqlGen::default();
        if let (Some(text), Some(pool)) = (sql.plan(&plan), sql.pool.clone()) {
            let node = MySqlQueryNode { sql: text, schema: plan.schema().clone(), pool };
            return Ok(Transformed::yes(LogicalPlan::Extension(Extension { node: Arc::new(node) })));
        }
    }
    plan.map_children(rewrite)
}

fn joins_or_aggregates(plan: &LogicalPlan) -> bool {
    matches!(plan, LogicalPlan::Join(_) | LogicalPlan::Aggregate(_)) || plan.inputs().iter().any(|p| joins_or_aggregates(p))
}

/// A part of a plan that runs as one MySQL query.
#[derive(Debug, Clone)]
pub struct MySqlQueryNode {
    pub sql: String,
    schema: DFSchemaRef,
    pool: mysql_async::Pool,
}

impl PartialEq for MySqlQueryNode {
    fn eq(&self, other: &Self) -> bool {
        self.sql == other.sql && self.schema == other.schema
    }
}

impl Eq for MySqlQueryNode {}

impl Hash for MySqlQueryNode {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.sql.hash(state);
        self.schema.hash(state);
    }
}

impl PartialOrd for MySqlQueryNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.sql.partial_cmp(&other.sql)
    }
}

impl UserDefinedLogicalNodeCore for MySqlQueryNode {
    fn name(&self) -> &str {
        "MySqlQuery"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    fn fmt_for_explain(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "MySqlQuery: {}", self.sql)
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, _inputs: Vec<LogicalPlan>) -> Result<Self> {
        Ok(self.clone())
    }
}

/// Plans `MySqlQueryNode`s as streaming MySQL scans.
#[derive(Debug, Default)]
pub struct MySqlExtensionPlanner;

#[async_trait]
impl ExtensionPlanner for MySqlExtensionPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        _physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<MySqlQueryNode>() else { return Ok(None) };
        if let Some(log) = session.config().get_extension::<PushdownLog>() {
            log.push(node.sql.clone());
        }
        tracing::debug!(sql = %node.sql, "MySQL query");
        let schema = Arc::new(node.schema.as_arrow().clone());
        let binary = schema.fields().iter().map(|f| f.data_type() == &DataType::Binary).collect();
        let scan = MySqlScan { pool: node.pool.clone(), sql: node.sql.clone(), schema, binary };
        Ok(Some(Arc::new(MySqlScanExec::new(scan, None))))
    }
}

/// The session's query planner: DataFusion's, plus MySQL query nodes.
#[derive(Debug, Default)]
pub struct MySqlAwareQueryPlanner;

#[async_trait]
impl QueryPlanner for MySqlAwareQueryPlanner {
    async fn create_physical_plan(&self, plan: &LogicalPlan, session: &dyn Session) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(MySqlExtensionPlanner)])
            .create_physical_plan(plan, session)
            .await
    }
}

/// The inputs an expression's columns resolve against: each is a derived
/// table alias with the schema whose fields it exposes as `c0..cN`.
type Inputs<'a> = [(String, &'a DFSchema)];

#[derive(Default)]
struct SqlGen {
    next_alias: usize,
    pool: Option<mysql_async::Pool>,
}

fn select_list(items: &[String]) -> String {
    if items.is_empty() {
        // Only the row count matters to the plan above.
        return "1 AS c_rows".into();
    }
    items.iter().enumerate().map(|(i, e)| format!("{e} AS c{i}")).collect::<Vec<_>>().join(", ")
}

fn passthrough(alias: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{alias}.c{i}")).collect()
}

fn is_text(dt: &DataType) -> bool {
    matches!(dt, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn is_integer(dt: &DataType) -> bool {
    dt.is_integer()
}

impl SqlGen {
    fn alias(&mut self) -> String {
        self.next_alias += 1;
        format!("t{}", self.next_alias)
    }

    /// MySQL SQL computing `plan`, its columns named `c0..cN` in the order of
    /// the plan's schema; None when any part cannot be sent.
    fn plan(&mut self, plan: &LogicalPlan) -> Option<String> {
        match plan {
            LogicalPlan::TableScan(scan) => {
                let provider = source_as_provider(&scan.source).ok()?;
                let table = provider.downcast_ref::<MySqlTable>()?;
                if self.pool.is_none() {
                    self.pool = Some(table.pool.clone());
                }
                // Every filter the scan holds must translate. Inexact ones
                // are re-applied above the scan, where a text filter stops
                // the pushdown anyway.
                for f in &scan.filters {
                    filter_sql(f, &table.schema)?;
                }
                let names: Vec<String> = scan.projected_schema.fields().iter().map(|f| f.name().clone()).collect();
                Some(table.select_as(&names, &scan.filters, scan.fetch))
            }
            LogicalPlan::SubqueryAlias(a) => self.plan(&a.input),
            LogicalPlan::Projection(p) => {
                let child = self.plan(&p.input)?;
                let t = self.alias();
                let inputs = [(t.clone(), p.input.schema().as_ref())];
                let items = p.expr.iter().map(|e| expr(e, &inputs)).collect::<Option<Vec<_>>>()?;
                Some(format!("SELECT {} FROM ({child}) AS {t}", select_list(&items)))
            }
            LogicalPlan::Filter(f) => {
                let child = self.plan(&f.input)?;
                let t = self.alias();
                let inputs = [(t.clone(), f.input.schema().as_ref())];
                let cond = expr(&f.predicate, &inputs)?;
                let n = f.input.schema().fields().len();
                Some(format!("SELECT {} FROM ({child}) AS {t} WHERE {cond}", select_list(&passthrough(&t, n))))
            }
            LogicalPlan::Limit(l) => {
                let (SkipType::Literal(skip), FetchType::Literal(fetch)) = (l.get_skip_type().ok()?, l.get_fetch_type().ok()?) else {
                    return None;
                };
                let child = self.plan(&l.input)?;
                let t = self.alias();
                let n = l.input.schema().fields().len();
                let fetch = fetch.map_or_else(|| u64::MAX.to_string(), |f| f.to_string());
                Some(format!("SELECT {} FROM ({child}) AS {t} LIMIT {skip}, {fetch}", select_list(&passthrough(&t, n))))
            }
            LogicalPlan::Join(j) => {
                let kind = match j.join_type {
                    JoinType::Inner => "JOIN",
                    JoinType::Left => "LEFT JOIN",
                    JoinType::Right => "RIGHT JOIN",
                    _ => return None,
                };
                let left = self.plan(&j.left)?;
                let right = self.plan(&j.right)?;
                let (l, r) = (self.alias(), self.alias());
                let inputs = [(l.clone(), j.left.schema().as_ref()), (r.clone(), j.right.schema().as_ref())];
                let eq = if j.null_equality == NullEquality::NullEqualsNull { "<=>" } else { "=" };
                let mut conds = Vec::new();
                for (a, b) in &j.on {
                    if mentions_text(a, &inputs) || mentions_text(b, &inputs) {
                        return None;
                    }
                    conds.push(format!("{} {eq} {}", expr(a, &inputs)?, expr(b, &inputs)?));
                }
                if let Some(f) = &j.filter {
                    conds.push(expr(f, &inputs)?);
                }
                if conds.is_empty() {
                    conds.push("1".into());
                }
                let mut items = passthrough(&l, j.left.schema().fields().len());
                items.extend(passthrough(&r, j.right.schema().fields().len()));
                Some(format!(
                    "SELECT {} FROM ({left}) AS {l} {kind} ({right}) AS {r} ON {}",
                    select_list(&items),
                    conds.join(" AND ")
                ))
            }
            LogicalPlan::Aggregate(a) => {
                let child = self.plan(&a.input)?;
                let t = self.alias();
                let inputs = [(t.clone(), a.input.schema().as_ref())];
                let mut groups = Vec::new();
                for g in &a.group_expr {
                    if mentions_text(g, &inputs) {
                        return None;
                    }
                    groups.push(expr(g, &inputs)?);
                }
                let mut items = groups.clone();
                for e in &a.aggr_expr {
                    items.push(aggregate(e, &inputs)?);
                }
                let group_by = if groups.is_empty() { String::new() } else { format!(" GROUP BY {}", groups.join(", ")) };
                Some(format!("SELECT {} FROM ({child}) AS {t}{group_by}", select_list(&items)))
            }
            _ => None,
        }
    }
}

/// Where a column is: `alias.cI`, and its type.
fn column<'a>(c: &datafusion::common::Column, inputs: &'a Inputs<'a>) -> Option<(String, &'a DataType)> {
    for (alias, schema) in inputs {
        if let Ok(i) = schema.index_of_column(c) {
            return Some((format!("{alias}.c{i}"), schema.field(i).data_type()));
        }
    }
    None
}

/// The type of an expression over the inputs, if it can be told.
fn type_of(e: &Expr, inputs: &Inputs<'_>) -> Option<DataType> {
    match e {
        Expr::Column(c) => column(c, inputs).map(|(_, t)| t.clone()),
        Expr::Literal(v, _) => Some(v.data_type()),
        Expr::Cast(c) => Some(c.field.data_type().clone()),
        Expr::Alias(a) => type_of(&a.expr, inputs),
        other => {
            use datafusion::logical_expr::ExprSchemable;
            let mut schema = inputs.first()?.1.clone();
            for (_, s) in &inputs[1..] {
                schema = schema.join(s).ok()?;
            }
            other.get_type(&schema).ok()
        }
    }
}

/// Whether an expression reads any text value (a column or a literal).
fn mentions_text(e: &Expr, inputs: &Inputs<'_>) -> bool {
    let mut text = false;
    let _ = e.apply(|x| {
        if let Some(t) = match x {
            Expr::Column(_) | Expr::Literal(..) => type_of(x, inputs),
            _ => None,
        } {
            text |= is_text(&t);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    text
}

/// The functions the engine computes MySQL's `/`, `DIV` and `%` with
/// (`lakehouse::mysql_arith`), by name, and the operator each is in MySQL.
pub const MYSQL_OPERATORS: [(&str, &str); 3] = [("lakewave_divide", "/"), ("lakewave_int_div", "DIV"), ("lakewave_remainder", "%")];

/// MySQL SQL for a scalar expression over the inputs.
fn expr(e: &Expr, inputs: &Inputs<'_>) -> Option<String> {
    Some(match e {
        Expr::Column(c) => column(c, inputs)?.0,
        Expr::Literal(v, _) => literal(v)?,
        Expr::Alias(a) => expr(&a.expr, inputs)?,
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let comparison = matches!(
                op,
                Operator::Eq
                    | Operator::NotEq
                    | Operator::Lt
                    | Operator::LtEq
                    | Operator::Gt
                    | Operator::GtEq
                    | Operator::IsDistinctFrom
                    | Operator::IsNotDistinctFrom
            );
            if comparison && (mentions_text(left, inputs) || mentions_text(right, inputs)) {
                return None;
            }
            let (l, r) = (expr(left, inputs)?, expr(right, inputs)?);
            let both = |f: fn(&DataType) -> bool| {
                type_of(left, inputs).is_some_and(|t| f(&t)) && type_of(right, inputs).is_some_and(|t| f(&t))
            };
            match op {
                Operator::IsDistinctFrom => return Some(format!("(NOT ({l} <=> {r}))")),
                Operator::IsNotDistinctFrom => return Some(format!("({l} <=> {r})")),
                Operator::Divide if both(is_integer) => return Some(format!("({l} DIV {r})")),
                Operator::Divide if !both(DataType::is_floating) => return None,
                Operator::Modulo if !both(is_integer) => return None,
                _ => {}
            }
            let sym = match op {
                Operator::Plus => "+",
                Operator::Minus => "-",
                Operator::Multiply => "*",
                Operator::Divide => "/",
                Operator::Modulo => "%",
                other => comparison_or_logic(other)?,
            };
            format!("({l} {sym} {r})")
        }
        // The engine's MySQL `/`, `DIV` and `%` (NULL for a zero divisor,
        // quotients at the dividend's scale plus 4): MySQL's own operators.
        Expr::ScalarFunction(f) if f.args.len() == 2 => {
            let (_, sym) = MYSQL_OPERATORS.iter().find(|(name, _)| *name == f.name())?;
            format!("({} {sym} {})", expr(&f.args[0], inputs)?, expr(&f.args[1], inputs)?)
        }
        Expr::Not(x) => format!("(NOT {})", expr(x, inputs)?),
        Expr::Negative(x) => format!("(-{})", expr(x, inputs)?),
        Expr::IsNull(x) => format!("({} IS NULL)", expr(x, inputs)?),
        Expr::IsNotNull(x) => format!("({} IS NOT NULL)", expr(x, inputs)?),
        Expr::Between(b) if !mentions_text(&b.expr, inputs) => {
            let not = if b.negated { "NOT " } else { "" };
            format!("({} {not}BETWEEN {} AND {})", expr(&b.expr, inputs)?, expr(&b.low, inputs)?, expr(&b.high, inputs)?)
        }
        Expr::InList(l) if !mentions_text(&l.expr, inputs) => {
            let not = if l.negated { "NOT " } else { "" };
            let items = l.list.iter().map(|i| expr(i, inputs)).collect::<Option<Vec<_>>>()?;
            format!("({} {not}IN ({}))", expr(&l.expr, inputs)?, items.join(", "))
        }
        Expr::Cast(c) => {
            let from = type_of(&c.expr, inputs)?;
            let to = c.field.data_type();
            let inner = expr(&c.expr, inputs)?;
            cast(&inner, &from, to)?
        }
        _ => return None,
    })
}

/// A cast MySQL performs exactly as the engine does: widening between
/// numeric types and dates; never from text or from fractions to integers
/// (MySQL rounds where the engine truncates).
fn cast(inner: &str, from: &DataType, to: &DataType) -> Option<String> {
    use DataType as T;
    let from_int = from.is_integer();
    Some(match to {
        t if t == from => inner.to_string(),
        t if t.is_signed_integer() && from_int => format!("CAST({inner} AS SIGNED)"),
        t if t.is_unsigned_integer() && from.is_unsigned_integer() => format!("CAST({inner} AS UNSIGNED)"),
        T::Float32 | T::Float64 if from_int || from.is_floating() || matches!(from, T::Decimal128(..)) => {
            format!("({inner} + 0E0)")
        }
        T::Decimal128(p, s) if from_int || matches!(from, T::Decimal128(_, fs) if fs <= s) => {
            format!("CAST({inner} AS DECIMAL({p},{s}))")
        }
        T::Timestamp(..) if matches!(from, T::Date32 | T::Timestamp(..)) => format!("CAST({inner} AS DATETIME(6))"),
        _ => return None,
    })
}

/// MySQL SQL for an aggregate MySQL computes the same way.
fn aggregate(e: &Expr, inputs: &Inputs<'_>) -> Option<String> {
    let e = match e {
        Expr::Alias(a) => a.expr.as_ref(),
        other => other,
    };
    let Expr::AggregateFunction(AggregateFunction { func, params }) = e else { return None };
    let AggregateFunctionParams { args, distinct, filter, order_by, null_treatment: _ } = params;
    if filter.is_some() || !order_by.is_empty() {
        return None;
    }
    let name = func.name().to_lowercase();
    let arg_type = args.first().and_then(|a| type_of(a, inputs));
    let distinct = if *distinct { "DISTINCT " } else { "" };
    match (name.as_str(), args.as_slice()) {
        ("count", []) => return (distinct.is_empty()).then(|| "COUNT(*)".into()),
        ("count", [Expr::Literal(v, _)]) if !v.is_null() && distinct.is_empty() => return Some("COUNT(*)".into()),
        ("count", [a]) => {
            if !distinct.is_empty() && mentions_text(a, inputs) {
                return None;
            }
            return Some(format!("COUNT({distinct}{})", expr(a, inputs)?));
        }
        _ => {}
    }
    let [a] = args.as_slice() else { return None };
    if !distinct.is_empty() || arg_type.as_ref().is_none_or(is_text) {
        return None;
    }
    let arg = expr(a, inputs)?;
    let t = arg_type?;
    Some(match name.as_str() {
        "sum" if t.is_numeric() => format!("SUM({arg})"),
        "min" => format!("MIN({arg})"),
        "max" => format!("MAX({arg})"),
        // The engine averages integers as MySQL does (DECIMAL, 4 more
        // digits) by casting them first, so these arrive as DECIMALs; an
        // integer argument here is averaged as a double, as DataFusion
        // would.
        "avg" if t.is_integer() => format!("AVG({arg} + 0E0)"),
        "avg" if t.is_floating() || matches!(t, DataType::Decimal128(..)) => format!("AVG({arg})"),
        _ => return None,
    })
}
