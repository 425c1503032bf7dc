//! MySQL's division, remainder and integer averages.
//!
//! - `a / b` over exact numbers (integers, DECIMAL) is a DECIMAL shown with
//!   `a`'s scale plus 4 (MySQL's default `div_precision_increment`), rounded
//!   half away from zero: `1/3` is `0.3333`, `7/2` is `3.5000`. As in MySQL
//!   it is computed to more digits, which what is built from it keeps:
//!   `(1/3)*3` is 1.0000. DataFusion divides integers as integers (`1/3`
//!   is 0) and gives DECIMAL quotients its own scale. With a floating-point
//!   operand the quotient is a DOUBLE, as in both.
//! - `a DIV b` is the quotient truncated to a BIGINT (`7.5 DIV 2` is 3).
//! - `AVG()` of integers is a DECIMAL with 4 digits after the point, as
//!   MySQL's, where DataFusion's is a DOUBLE.
//! - A zero divisor gives NULL (MySQL's answer outside strict data-change
//!   statements) for `/`, `DIV` and `%`, where DataFusion stops the query
//!   or returns infinity.
//!
//! An analyzer rule ahead of type coercion ([`MySqlDivision`]) replaces the
//! `/` and `%` operators over numbers with functions computing them so,
//! named as the operators (`a / b`) so that columns keep their names; the
//! parser's `DIV` reaches the engine as a call of [`INT_DIV`], which the
//! session registers. One after coercion ([`MySqlShownScale`]) rounds the
//! results to the scales MySQL shows.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, Float64Array, Int64Array};
use datafusion::arrow::compute::kernels::{cmp, numeric, zip};
use datafusion::arrow::datatypes::{i256, DataType, Decimal128Type, Field, FieldRef, Float64Type};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{exec_err, plan_err, Column, DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::{BinaryExpr, ScalarFunction};
use datafusion::logical_expr::type_coercion::binary::BinaryTypeCoercer;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    cast, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, Projection, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use connectors::mysql::pushdown::MYSQL_OPERATORS;

/// The names of the functions and the operators they compute, by [`Op`]
/// (shared with the MySQL pushdown, which sends them as the operators).
const DIVIDE: &str = MYSQL_OPERATORS[Op::Divide as usize].0;
/// The name `a DIV b` is called by.
pub const INT_DIV: &str = MYSQL_OPERATORS[Op::IntDivide as usize].0;

/// MySQL's `div_precision_increment`: the digits a quotient gets past its
/// dividend's.
const DIV_SCALE_INCREMENT: i8 = 4;
/// MySQL's largest DECIMAL scale.
const MAX_SCALE: i8 = 30;

/// In the order of [`MYSQL_OPERATORS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    /// `/`
    Divide,
    /// `DIV`
    IntDivide,
    /// `%`, `MOD`
    Remainder,
}

/// One of the three operators over numbers.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MySqlArith {
    op: Op,
    signature: Signature,
}

impl MySqlArith {
    fn udf(op: Op) -> Arc<ScalarUDF> {
        static UDFS: OnceLock<[Arc<ScalarUDF>; 3]> = OnceLock::new();
        let all = UDFS.get_or_init(|| {
            [Op::Divide, Op::IntDivide, Op::Remainder].map(|op| {
                Arc::new(ScalarUDF::new_from_impl(MySqlArith { op, signature: Signature::user_defined(Volatility::Immutable) }))
            })
        });
        Arc::clone(&all[op as usize])
    }

    /// The function `a DIV b` is planned as.
    pub fn int_div() -> Arc<ScalarUDF> {
        Self::udf(Op::IntDivide)
    }

    fn symbol(&self) -> &'static str {
        MYSQL_OPERATORS[self.op as usize].1
    }
}

/// Whether `e` is a call of MySQL's `/`.
fn is_quotient(e: &Expr) -> bool {
    matches!(e, Expr::ScalarFunction(f) if f.func.name() == DIVIDE)
}

fn is_exact(t: &DataType) -> bool {
    t.is_integer() || matches!(t, DataType::Decimal128(..) | DataType::Null)
}

fn is_number(t: &DataType) -> bool {
    is_exact(t) || t.is_floating()
}

/// The digits an integer type's values can have.
fn integer_precision(t: &DataType) -> Option<u8> {
    Some(match t {
        DataType::Int8 | DataType::UInt8 => 3,
        DataType::Int16 | DataType::UInt16 => 5,
        DataType::Int32 | DataType::UInt32 => 10,
        DataType::Int64 => 19,
        DataType::UInt64 => 20,
        _ => return None,
    })
}

/// The DECIMAL an exact operand is divided as.
fn as_decimal(t: &DataType) -> DataType {
    match (t, integer_precision(t)) {
        (DataType::Decimal128(p, s), _) => DataType::Decimal128(*p, *s),
        (_, Some(p)) => DataType::Decimal128(p, 0),
        _ => DataType::Decimal128(1, 0),
    }
}

/// The scale MySQL shows `a / b` with, `a` at scale `s1`: 4 digits more
/// (at most 30, never fewer than `a`'s).
fn shown_quotient_scale(s1: i8) -> i8 {
    (s1 + DIV_SCALE_INCREMENT).min(MAX_SCALE).max(s1)
}

/// The scale MySQL computes `a / b` to, `a` and `b` at scales `s1` and `s2`:
/// MySQL's DECIMALs are made of 9-digit words, and the quotient gets the
/// words of both operands' fractions, plus one more unless their unused
/// digits already cover the increment. The quotient is truncated there and
/// rounded to its shown scale only when shown (`(1/3)*3` is 1.0000, of
/// 0.333333333 · 3).
fn computed_quotient_scale(s1: i8, s2: i8) -> i8 {
    let words = |s: i8| (s.max(0) as i16 + 8) / 9 * 9;
    let (f1, f2) = (words(s1), words(s2));
    let spare = (f1 - s1.max(0) as i16) + (f2 - s2.max(0) as i16);
    let extra = if spare < DIV_SCALE_INCREMENT as i16 { 9 } else { 0 };
    (f1 + f2 + extra).min(38) as i8
}

/// The type `a / b` is computed as over DECIMALs: the digits the quotient
/// can have before the point (the dividend's, plus the divisor's scale),
/// and the computed scale as far as DECIMAL(38) leaves room for it, never
/// below the shown scale.
fn quotient_type(p1: u8, s1: i8, s2: i8) -> DataType {
    let integer_digits = (p1 as i16 - s1 as i16 + s2.max(0) as i16).max(1);
    let shown = shown_quotient_scale(s1) as i16;
    let scale = (computed_quotient_scale(s1, s2) as i16).min(38 - integer_digits).max(shown);
    let precision = (integer_digits + scale).clamp(1, 38) as u8;
    DataType::Decimal128(precision, scale.min(precision as i16) as i8)
}

impl ScalarUDFImpl for MySqlArith {
    fn name(&self) -> &str {
        MYSQL_OPERATORS[self.op as usize].0
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let [l, r] = args else { return plan_err!("{} takes two operands", self.symbol()) };
        if !is_number(l) || !is_number(r) {
            // MySQL divides text (and what else is not an exact number
            // here) as DOUBLEs: '6' DIV 4 is 1.
            return match self.op {
                Op::Remainder => plan_err!("{} takes numbers, not {l} and {r}", self.symbol()),
                _ => Ok(vec![DataType::Float64, DataType::Float64]),
            };
        }
        match self.op {
            Op::Remainder => {
                let (l, r) = BinaryTypeCoercer::new(l, &Operator::Modulo, r).get_input_types()?;
                Ok(vec![l, r])
            }
            _ if is_exact(l) && is_exact(r) => Ok(vec![as_decimal(l), as_decimal(r)]),
            _ => Ok(vec![DataType::Float64, DataType::Float64]),
        }
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let [l, r] = args else { return plan_err!("{} takes two operands", self.symbol()) };
        Ok(match (self.op, l, r) {
            (Op::IntDivide, ..) => DataType::Int64,
            (Op::Remainder, ..) => BinaryTypeCoercer::new(l, &Operator::Modulo, r).get_result_type()?,
            (Op::Divide, DataType::Decimal128(p1, s1), DataType::Decimal128(_, s2)) => quotient_type(*p1, *s1, *s2),
            _ => DataType::Float64,
        })
    }

    /// Always nullable: a zero divisor gives NULL.
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let types: Vec<DataType> = args.arg_fields.iter().map(|f| f.data_type().clone()).collect();
        Ok(Arc::new(Field::new(self.name(), self.return_type(&types)?, true)))
    }

    /// The operator's own name (`a / b`), so columns keep their names.
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        match args {
            [l, r] => Ok(format!("{} {} {}", l.schema_name(), self.symbol(), r.schema_name())),
            _ => plan_err!("{} takes two operands", self.symbol()),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [l, r] = args.args.as_slice() else {
            return plan_err!("{} takes two operands", self.symbol());
        };
        let return_type = args.return_field.data_type();
        crate::decimal_arith::on_arrays(l, r, args.number_rows, |a, b| {
            Ok(match (self.op, a.data_type(), b.data_type()) {
                (Op::Remainder, ..) => remainder(a, b)?,
                (op, DataType::Decimal128(_, s1), DataType::Decimal128(_, s2)) => {
                    let (a, b) = (a.as_primitive::<Decimal128Type>(), b.as_primitive::<Decimal128Type>());
                    match (op, return_type) {
                        (Op::Divide, DataType::Decimal128(p, s)) => Arc::new(decimal_quotient(a, *s1, b, *s2, *p, *s)?),
                        _ => Arc::new(decimal_int_quotient(a, *s1, b, *s2)?),
                    }
                }
                (op, DataType::Float64, DataType::Float64) => {
                    let (a, b) = (a.as_primitive::<Float64Type>(), b.as_primitive::<Float64Type>());
                    let q: Float64Array = a.iter().zip(b.iter()).map(|(x, y)| Some(x? / y.filter(|y| *y != 0.0)?)).collect();
                    match op {
                        Op::Divide => Arc::new(q),
                        _ => Arc::new(float_to_bigint(&q)?),
                    }
                }
                (_, l, r) => return exec_err!("{} of {l} and {r}", self.symbol()),
            })
        })
    }
}

/// `a % b` as DataFusion computes it, but NULL where `b` is zero.
fn remainder(a: &ArrayRef, b: &ArrayRef) -> Result<ArrayRef> {
    let zero = ScalarValue::new_zero(b.data_type())?.to_scalar()?;
    let is_zero = cmp::eq(b, &zero)?;
    if is_zero.true_count() == 0 {
        return Ok(numeric::rem(a, b)?);
    }
    // The kernel skips null slots, so zeros become nulls first.
    let null = ScalarValue::try_from(b.data_type())?.to_scalar()?;
    let b = zip::zip(&is_zero, &null, b)?;
    Ok(numeric::rem(a, &b)?)
}

/// `n / d`, rounded half away from zero or truncated; `d` is not zero.
fn rounded(n: i128, d: i128, round: bool) -> i128 {
    let (q, r) = (n / d, n % d);
    if round && r.unsigned_abs() >= d.unsigned_abs() - r.unsigned_abs() {
        q + if (n < 0) == (d < 0) { 1 } else { -1 }
    } else {
        q
    }
}

fn rounded_wide(n: i256, d: i256, round: bool) -> i256 {
    let (q, r) = (n / d, n % d);
    let (r, d_abs) = (r.wrapping_abs(), d.wrapping_abs());
    if round && r >= d_abs - r {
        q + if n.is_negative() == d.is_negative() { i256::ONE } else { i256::MINUS_ONE }
    } else {
        q
    }
}

fn pow10_wide(k: u32) -> i256 {
    (0..k).fold(i256::ONE, |acc, _| acc * i256::from_i128(10))
}

/// `a / b` with scale `s` (`a` at scale `s1`, `b` at `s2`): `a · 10^(s -
/// s1 + s2) / b` in 128 bits where the product fits and 256 otherwise,
/// truncated past the shown scale and rounded at it; NULL where `b` is
/// zero; an error past `p` digits.
fn decimal_quotient(a: &Decimal128Array, s1: i8, b: &Decimal128Array, s2: i8, p: u8, s: i8) -> Result<Decimal128Array> {
    let round = s <= shown_quotient_scale(s1);
    let k = s as i32 - s1 as i32 + s2 as i32;
    // The dividend's factor, or (for a negative exponent) the divisor's.
    let (nf, df) = if k >= 0 { (pow10_wide(k as u32), i256::ONE) } else { (i256::ONE, pow10_wide((-k) as u32)) };
    let narrow = (k >= 0 && k <= 38).then(|| 10i128.pow(k as u32));
    let limit = 10i128.pow(p as u32);
    let mut overflow = false;
    let out: Decimal128Array = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| {
            let (x, y) = (x?, y.filter(|y| *y != 0)?);
            let q = match narrow.and_then(|f| x.checked_mul(f)) {
                Some(n) => rounded(n, y, round),
                None => {
                    let n = i256::from_i128(x).checked_mul(nf);
                    let d = i256::from_i128(y).checked_mul(df);
                    match n.zip(d).and_then(|(n, d)| rounded_wide(n, d, round).to_i128()) {
                        Some(q) => q,
                        None => {
                            overflow = true;
                            0
                        }
                    }
                }
            };
            overflow |= q.unsigned_abs() >= limit as u128;
            Some(q)
        })
        .collect();
    if overflow {
        return exec_err!("DECIMAL value out of range in division (more than {p} digits)");
    }
    Ok(out.with_precision_and_scale(p, s)?)
}

/// `a DIV b` over DECIMALs: the quotient truncated toward zero, a BIGINT.
fn decimal_int_quotient(a: &Decimal128Array, s1: i8, b: &Decimal128Array, s2: i8) -> Result<Int64Array> {
    // a / 10^s1 ÷ b / 10^s2 = a · 10^s2 ÷ (b · 10^s1)
    let (af, bf) = (pow10_wide(s2.max(0) as u32), pow10_wide(s1.max(0) as u32));
    let mut overflow = false;
    let out: Int64Array = a
        .iter()
        .zip(b.iter())
        .map(|(x, y)| {
            let (x, y) = (x?, y.filter(|y| *y != 0)?);
            let q = if s1 == 0 && s2 == 0 {
                x.checked_div(y).and_then(|q| i64::try_from(q).ok())
            } else {
                let n = i256::from_i128(x).checked_mul(af);
                let d = i256::from_i128(y).checked_mul(bf);
                n.zip(d).and_then(|(n, d)| (n / d).to_i128()).and_then(|q| i64::try_from(q).ok())
            };
            overflow |= q.is_none();
            Some(q.unwrap_or(0))
        })
        .collect();
    if overflow {
        return exec_err!("BIGINT value out of range in DIV");
    }
    Ok(out)
}

fn float_to_bigint(q: &Float64Array) -> Result<Int64Array> {
    let mut overflow = false;
    let out: Int64Array = q
        .iter()
        .map(|v| {
            let t = v?.trunc();
            overflow |= !(t >= i64::MIN as f64 && t < i64::MAX as f64);
            Some(if overflow { 0 } else { t as i64 })
        })
        .collect();
    if overflow {
        return exec_err!("BIGINT value out of range in DIV");
    }
    Ok(out)
}

/// DataFusion's analyzer rules with [`MySqlDivision`] ahead of them (of
/// type coercion in particular, which then coerces around the quotients'
/// types), and [`MySqlShownScale`] after them.
pub fn analyzer_rules() -> Vec<Arc<dyn AnalyzerRule + Send + Sync>> {
    let mut rules = datafusion::optimizer::Analyzer::new().rules;
    rules.insert(0, Arc::new(MySqlDivision));
    rules.push(Arc::new(MySqlShownScale));
    rules
}

/// The analyzer rule: `/` and `%` over numbers become the functions above,
/// and averages of integers averages of DECIMALs.
#[derive(Debug, Default)]
pub struct MySqlDivision;

impl AnalyzerRule for MySqlDivision {
    fn name(&self) -> &str {
        "mysql_division"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let mysql_arith = |x: &Expr| match x {
            Expr::BinaryExpr(b) => matches!(b.op, Operator::Divide | Operator::Modulo),
            Expr::AggregateFunction(a) => a.func.name() == "avg",
            _ => false,
        };
        if !any_expression(&plan, mysql_arith)? {
            return Ok(plan);
        }
        // A recursive query's work table keeps the types it was planned
        // with: such queries keep DataFusion's arithmetic.
        if any_node(&plan, |p| matches!(p, LogicalPlan::RecursiveQuery(_)))? {
            return Ok(plan);
        }
        // Every node is rebuilt: a quotient's type changes the types of the
        // columns above it.
        plan.transform_up_with_subqueries(|node| {
            if let LogicalPlan::Values(values) = node {
                return Ok(Transformed::yes(LogicalPlan::Values(rewrite_values(values)?)));
            }
            let mut schema = merge_schema(&node.inputs());
            if let LogicalPlan::TableScan(scan) = &node {
                if let Ok(source) = DFSchema::try_from_qualified_schema(scan.table_name.clone(), &scan.source.schema()) {
                    schema.merge(&source);
                }
            }
            let node = node.map_expressions(|e| e.transform_up(|x| rewrite(x, &schema)))?.data;
            Ok(Transformed::yes(node.recompute_schema()?))
        })
        .map(|t| t.data)
    }
}

/// The analyzer rule after type coercion: a query's result columns shown
/// at MySQL's scales.
#[derive(Debug, Default)]
pub struct MySqlShownScale;

impl AnalyzerRule for MySqlShownScale {
    fn name(&self) -> &str {
        "mysql_shown_scale"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        let wanted = |x: &Expr| match x {
            Expr::AggregateFunction(a) => a.func.name() == "avg",
            x => is_quotient(x),
        };
        if !any_expression(&plan, wanted)? {
            return Ok(plan);
        }
        // Quotients turned into text (`CAST(a/b AS CHAR)`, `CONCAT(a/b,
        // '%')`) are rounded first too.
        let plan = plan
            .transform_up_with_subqueries(|node| {
                let [input] = node.inputs()[..] else { return Ok(Transformed::no(node)) };
                let (schema, inner) = (Arc::clone(input.schema()), shown_scales(input));
                node.map_expressions(|e| e.transform_up(|x| text_of_shown(x, &schema, &inner)))
            })?
            .data;
        rounded_as_shown(plan)
    }
}

/// `x` turned into text, with its argument rounded to the scale it shows.
fn text_of_shown(x: Expr, schema: &DFSchema, inner: &[Option<i8>]) -> Result<Transformed<Expr>> {
    let text = |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    let rounded = |arg: &Expr| -> Option<Expr> {
        let shown = shown_scale(arg, schema, inner)?;
        match arg.get_type(schema) {
            Ok(DataType::Decimal128(p, s)) if shown < s => Some(cast(arg.clone(), shown_type(p, s, shown))),
            _ => None,
        }
    };
    Ok(match x {
        Expr::Cast(mut c) if text(c.field.data_type()) => match rounded(&c.expr) {
            Some(arg) => {
                c.expr = Box::new(arg);
                Transformed::yes(Expr::Cast(c))
            }
            None => Transformed::no(Expr::Cast(c)),
        },
        Expr::ScalarFunction(mut f) if f.func.name() == "mysql_text" && f.args.len() == 1 => match rounded(&f.args[0]) {
            Some(arg) => {
                f.args[0] = arg;
                Transformed::yes(Expr::ScalarFunction(f))
            }
            None => Transformed::no(Expr::ScalarFunction(f)),
        },
        x => Transformed::no(x),
    })
}

/// `VALUES` rows with MySQL's arithmetic: each column gets the type common
/// to its rows (type coercion does not derive it again), and the rows are
/// cast to it.
fn rewrite_values(values: datafusion::logical_expr::Values) -> Result<datafusion::logical_expr::Values> {
    use datafusion::logical_expr::type_coercion::binary::type_union_resolution;
    let empty = DFSchema::empty();
    let mut rows: Vec<Vec<Expr>> = values
        .values
        .into_iter()
        .map(|row| row.into_iter().map(|e| e.transform_up(|x| rewrite(x, &empty)).map(|t| t.data)).collect::<Result<Vec<_>>>())
        .collect::<Result<_>>()?;
    // The planner cast every row to the type it found common, integer
    // quotients included: a quotient now sheds that cast.
    for cell in rows.iter_mut().flatten() {
        if let Expr::Cast(c) = cell {
            if any_expr_in(&c.expr, &is_quotient) {
                *cell = c.expr.as_ref().clone();
            }
        }
    }
    let mut fields = Vec::with_capacity(values.schema.fields().len());
    for (j, (qualifier, field)) in values.schema.iter().enumerate() {
        let types: Vec<DataType> = rows.iter().filter_map(|r| r.get(j)?.get_type(&empty).ok()).collect();
        let common = common_decimal(&types).or_else(|| type_union_resolution(&types)).unwrap_or_else(|| field.data_type().clone());
        for row in rows.iter_mut() {
            if let Some(e) = row.get_mut(j) {
                if e.get_type(&empty).ok().as_ref() != Some(&common) {
                    *e = cast(e.clone(), common.clone());
                }
            }
        }
        fields.push((qualifier.cloned(), Arc::new(field.as_ref().clone().with_data_type(common).with_nullable(true))));
    }
    let schema = DFSchema::new_with_metadata(fields, values.schema.metadata().clone())?;
    Ok(datafusion::logical_expr::Values { schema: Arc::new(schema), values: rows })
}

/// The DECIMAL holding every value of `types` when they are DECIMALs and
/// integers, one at least a DECIMAL: the most digits on each side of the
/// point.
fn common_decimal(types: &[DataType]) -> Option<DataType> {
    let mut any_decimal = false;
    let (mut integer_digits, mut scale) = (1i16, 0i16);
    for t in types {
        let (p, s) = match (t, integer_precision(t)) {
            (DataType::Null, _) => continue,
            (DataType::Decimal128(p, s), _) => (*p as i16, *s as i16),
            (_, Some(p)) => (p as i16, 0),
            _ => return None,
        };
        any_decimal |= matches!(t, DataType::Decimal128(..));
        integer_digits = integer_digits.max(p - s);
        scale = scale.max(s);
    }
    any_decimal.then(|| DataType::Decimal128((integer_digits + scale).clamp(1, 38) as u8, scale.min(38) as i8))
}

/// A DECIMAL(`p`, `s`) value's type once rounded to `shown` digits after
/// the point (a cast rounds half away from zero).
fn shown_type(p: u8, s: i8, shown: i8) -> DataType {
    DataType::Decimal128((p as i16 - s as i16 + shown as i16).clamp(1, 38) as u8, shown)
}

/// A query's result with each quotient (and each column computed from
/// quotients) rounded to the scale MySQL shows it with: a projection on top
/// rounding those columns, when there are any.
fn rounded_as_shown(plan: LogicalPlan) -> Result<LogicalPlan> {
    use LogicalPlan as P;
    if !matches!(
        plan,
        P::Projection(_) | P::Sort(_) | P::Limit(_) | P::Aggregate(_) | P::Filter(_) | P::Distinct(_) | P::Union(_) | P::Window(_) | P::Join(_)
    ) {
        return Ok(plan);
    }
    let shown = shown_scales(&plan);
    let schema = Arc::clone(plan.schema());
    // Columns are named from above by qualifier and name, so two columns
    // of one name (a scalar subquery is named after its own column) cannot
    // be told apart there: such a result is left as computed.
    let mut names = std::collections::HashSet::new();
    if !schema.iter().all(|(q, f)| names.insert((q.cloned(), f.name().clone()))) {
        return Ok(plan);
    }
    let mut rounded = false;
    let exprs: Vec<Expr> = schema
        .iter()
        .zip(shown)
        .map(|((qualifier, field), shown)| {
            let column = Expr::Column(Column::from((qualifier, field.as_ref())));
            match (field.data_type(), shown) {
                (DataType::Decimal128(p, s), Some(shown)) if shown < *s => {
                    rounded = true;
                    cast(column, shown_type(*p, *s, shown)).alias_qualified(qualifier.cloned(), field.name())
                }
                _ => column,
            }
        })
        .collect();
    if !rounded {
        return Ok(plan);
    }
    Ok(P::Projection(Projection::try_new(exprs, Arc::new(plan))?))
}

/// The scale MySQL shows each output column of `plan` with, where it can
/// differ from the column type's (`None` there).
fn shown_scales(plan: &LogicalPlan) -> Vec<Option<i8>> {
    use LogicalPlan as P;
    let width = plan.schema().fields().len();
    let over = |exprs: &mut dyn Iterator<Item = &Expr>, input: &LogicalPlan| -> Vec<Option<i8>> {
        let inner = shown_scales(input);
        exprs.map(|e| shown_scale(e, input.schema(), &inner)).collect()
    };
    let scales = match plan {
        P::Projection(p) => over(&mut p.expr.iter(), &p.input),
        P::Aggregate(a) => over(&mut a.group_expr.iter().chain(a.aggr_expr.iter()), &a.input),
        P::Window(w) => {
            let mut scales = shown_scales(&w.input);
            scales.extend(over(&mut w.window_expr.iter(), &w.input));
            scales
        }
        P::Filter(f) => shown_scales(&f.input),
        P::Sort(s) => shown_scales(&s.input),
        P::Limit(l) => shown_scales(&l.input),
        P::SubqueryAlias(a) => shown_scales(&a.input),
        P::Distinct(datafusion::logical_expr::Distinct::All(input)) => shown_scales(input),
        P::Join(j) => {
            use datafusion::common::JoinType as J;
            let (left, right) = (shown_scales(&j.left), shown_scales(&j.right));
            match j.join_type {
                J::LeftSemi | J::LeftAnti | J::LeftMark => left,
                J::RightSemi | J::RightAnti | J::RightMark => right,
                _ => left.into_iter().chain(right).collect(),
            }
        }
        // A column of VALUES is one of its rows' values.
        P::Values(v) => {
            let empty = DFSchema::empty();
            (0..width)
                .map(|j| widest(v.values.iter().filter_map(|r| r.get(j)).map(|e| (shown_scale(e, &empty, &[]), own_scale(e, &empty)))))
                .collect()
        }
        // A column of a union is one of its inputs' columns.
        P::Union(u) => {
            let inputs: Vec<(Vec<Option<i8>>, Vec<Option<i8>>)> = u.inputs.iter().map(|i| (shown_scales(i), natural_scales(i))).collect();
            let at = |scales: &[Option<i8>], j: usize| scales.get(j).copied().flatten();
            (0..width).map(|j| widest(inputs.iter().map(|(shown, natural)| (at(shown, j), at(natural, j))))).collect()
        }
        _ => vec![],
    };
    let mut scales = scales;
    scales.resize(width, None);
    scales
}

/// The scale shown by a value that is one of several (CASE branches,
/// COALESCE's arguments, union inputs, VALUES rows), each given as the
/// scale it shows and its own type's: when any shows a quotient's scale,
/// the most digits any of them shows (None when one is not a number);
/// otherwise None.
fn widest(alternatives: impl Iterator<Item = (Option<i8>, Option<i8>)>) -> Option<i8> {
    let alternatives: Vec<(Option<i8>, Option<i8>)> = alternatives.collect();
    if !alternatives.iter().any(|(shown, _)| shown.is_some()) {
        return None;
    }
    alternatives.into_iter().map(|(shown, own)| shown.or(own)).reduce(|a, b| a.zip(b).map(|(a, b)| a.max(b))).flatten()
}

/// The scale MySQL shows `e` with (over `schema`, whose columns are shown
/// with `inner`) where it is not its type's (that is, where a quotient
/// went into it): a quotient's is its dividend's plus 4, a product's the
/// sum of its operands', a sum's the larger, an average's 4 more than its
/// argument's; a cast to a DECIMAL shows no more than its scale.
fn shown_scale(e: &Expr, schema: &DFSchema, inner: &[Option<i8>]) -> Option<i8> {
    let of = |x: &Expr| shown_scale(x, schema, inner);
    let either = |x: &Expr| of(x).or_else(|| own_scale(x, schema));
    let capped = |s: i8| s.min(MAX_SCALE);
    let one_of = |xs: &mut dyn Iterator<Item = &Expr>| widest(xs.map(|x| (of(x), own_scale(x, schema))));
    // Aggregations and window functions over one argument.
    let aggregate = |name: &str, args: &[Expr]| match (name, args) {
        ("sum" | "min" | "max" | "first_value" | "last_value" | "lag" | "lead", [x]) => of(x),
        ("avg", [x]) => either(x).map(|s| capped(s + DIV_SCALE_INCREMENT)),
        _ => None,
    };
    match e {
        Expr::Column(c) => schema.index_of_column(c).ok().and_then(|i| inner.get(i).copied().flatten()),
        Expr::Alias(a) => of(&a.expr),
        Expr::Negative(x) => of(x),
        // A cast to fewer digits than the value has is the query's own (it
        // shows them); one to more is type coercion's, which shows none more.
        Expr::Cast(c) => match (c.field.data_type(), c.expr.get_type(schema)) {
            (DataType::Decimal128(_, t), Ok(DataType::Decimal128(_, from))) if *t < from => of(&c.expr).map(|_| *t),
            (DataType::Decimal128(_, t), _) => of(&c.expr).map(|s| s.min(*t)),
            _ => None,
        },
        Expr::ScalarSubquery(q) => shown_scales(&q.subquery).first().copied().flatten(),
        // Functions passing one of their arguments on.
        Expr::ScalarFunction(f) if matches!(f.func.name(), "coalesce" | "nvl" | "ifnull" | "nullif" | "abs" | "greatest" | "least") => {
            one_of(&mut f.args.iter())
        }
        Expr::WindowFunction(w) => aggregate(w.fun.name(), &w.params.args),
        Expr::ScalarFunction(f) if is_quotient(e) && f.args.len() == 2 => either(&f.args[0]).map(shown_quotient_scale),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) if of(left).is_some() || of(right).is_some() => match op {
            Operator::Multiply => either(left).zip(either(right)).map(|(l, r)| capped(l + r)),
            Operator::Plus | Operator::Minus => either(left).zip(either(right)).map(|(l, r)| l.max(r)),
            _ => None,
        },
        Expr::AggregateFunction(a) => aggregate(a.func.name(), &a.params.args),
        Expr::Case(c) => one_of(&mut c.when_then_expr.iter().map(|(_, t)| t.as_ref()).chain(c.else_expr.as_deref())),
        _ => None,
    }
}

/// The scales of `plan`'s columns before type coercion widened them (the
/// literal `1.5` in a union with quotients is cast to their scale, but
/// shows one digit).
fn natural_scales(plan: &LogicalPlan) -> Vec<Option<i8>> {
    match plan {
        LogicalPlan::Projection(p) => p.expr.iter().map(|e| own_scale(e, p.input.schema())).collect(),
        LogicalPlan::SubqueryAlias(a) => natural_scales(&a.input),
        other => other.schema().fields().iter().map(|f| type_scale(f.data_type())).collect(),
    }
}

/// The scale of a DECIMAL type, 0 for an integer type.
fn type_scale(t: &DataType) -> Option<i8> {
    match t {
        DataType::Decimal128(_, s) => Some(*s),
        t if t.is_integer() => Some(0),
        _ => None,
    }
}

/// The scale of `x`'s type (0 for an integer), through the casts type
/// coercion puts on operands (`1` in `CASE ... THEN 2/3 ELSE 1 END` is cast
/// to the quotient's type, but shows no fraction).
fn own_scale(x: &Expr, schema: &DFSchema) -> Option<i8> {
    if let Expr::Alias(a) = x {
        return own_scale(&a.expr, schema);
    }
    if let Expr::Cast(c) = x {
        if let DataType::Decimal128(_, t) = c.field.data_type() {
            return own_scale(&c.expr, schema).map(|s| s.min(*t));
        }
    }
    x.get_type(schema).ok().as_ref().and_then(type_scale)
}

/// Whether `e` or an expression inside it is one `wanted` says yes to.
fn any_expr_in(e: &Expr, wanted: &impl Fn(&Expr) -> bool) -> bool {
    e.exists(|x| Ok(wanted(x))).unwrap_or(false)
}

/// Whether a node anywhere in `plan` (subqueries included) is one `wanted`
/// says yes to.
fn any_node(plan: &LogicalPlan, wanted: impl Fn(&LogicalPlan) -> bool) -> Result<bool> {
    let mut found = false;
    plan.apply_with_subqueries(|node| {
        found = wanted(node);
        Ok(if found { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    })?;
    Ok(found)
}

/// Whether an expression anywhere in `plan` (subqueries included) is one
/// `wanted` says yes to.
fn any_expression(plan: &LogicalPlan, wanted: impl Fn(&Expr) -> bool) -> Result<bool> {
    any_node(plan, |node| {
        let found = node.apply_expressions(|e| Ok(if any_expr_in(e, &wanted) { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue }));
        matches!(found, Ok(TreeNodeRecursion::Stop))
    })
}

fn rewrite(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    // MySQL averages integers as DECIMALs (`AVG(x)` of 1 and 2 is 1.5000),
    // rounded at 4 digits. DataFusion's average of a DECIMAL has 4 digits
    // more than its argument, truncated: the integers become DECIMALs with
    // 5 digits after the point, whose average (9 digits) is then rounded
    // to 4 when shown.
    if let Expr::AggregateFunction(mut a) = e {
        let digits = a.params.args.first().and_then(|x| integer_precision(&x.get_type(schema).ok()?));
        return Ok(match digits {
            Some(p) if a.func.name() == "avg" && a.params.args.len() == 1 => {
                a.params.args[0] = cast(a.params.args[0].clone(), DataType::Decimal128(p + 5, 5));
                Transformed::yes(Expr::AggregateFunction(a))
            }
            _ => Transformed::no(Expr::AggregateFunction(a)),
        });
    }
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else { return Ok(Transformed::no(e)) };
    let op = match op {
        Operator::Divide => Op::Divide,
        Operator::Modulo => Op::Remainder,
        _ => return Ok(Transformed::no(e)),
    };
    // Operands whose types are unknown here, or not numbers (intervals,
    // text), keep DataFusion's operator.
    let (Ok(l), Ok(r)) = (left.get_type(schema), right.get_type(schema)) else { return Ok(Transformed::no(e)) };
    if !is_number(&l) || !is_number(&r) || (l == DataType::Null && r == DataType::Null) {
        return Ok(Transformed::no(e));
    }
    let (left, right) = (left.as_ref().clone(), right.as_ref().clone());
    Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(MySqlArith::udf(op), vec![left, right]))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotient_types_follow_mysql() {
        // 1/3 is computed to 9 digits, 1.00/3 too, 1.00/3.00 to 18.
        assert_eq!(computed_quotient_scale(0, 0), 9);
        assert_eq!(computed_quotient_scale(2, 0), 9);
        assert_eq!(computed_quotient_scale(2, 2), 18);
        assert_eq!(computed_quotient_scale(6, 0), 18);
        assert_eq!(shown_quotient_scale(2), 6);
        assert_eq!(shown_quotient_scale(30), 30);
        assert_eq!(quotient_type(19, 0, 0), DataType::Decimal128(28, 9));
        assert_eq!(quotient_type(15, 2, 2), DataType::Decimal128(33, 18));
        // No room for the computed digits: the shown scale at least.
        assert_eq!(quotient_type(38, 4, 4), DataType::Decimal128(38, 8));
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(rounded(10, 4, true), 3);
        assert_eq!(rounded(10, 4, false), 2);
        assert_eq!(rounded(-10, 4, true), -3);
        assert_eq!(rounded(10, -4, true), -3);
        assert_eq!(rounded(9, 4, true), 2);
        assert_eq!(rounded(-9, 4, true), -2);
        assert_eq!(rounded_wide(i256::from_i128(-10), i256::from_i128(4), true), i256::from_i128(-3));
        assert_eq!(rounded_wide(i256::from_i128(-10), i256::from_i128(4), false), i256::from_i128(-2));
        assert_eq!(rounded_wide(i256::from_i128(9), i256::from_i128(-4), true), i256::from_i128(-2));
    }

    #[test]
    fn quotients_wide_and_narrow() {
        // 1 / 3 at scale 4; a dividend too wide for 128 bits times 10^4.
        let a = Decimal128Array::from(vec![Some(1), Some(i128::MAX / 10), None, Some(5)]);
        let b = Decimal128Array::from(vec![Some(3), Some(i128::MAX / 10), Some(1), Some(0)]);
        let q = decimal_quotient(&a, 0, &b, 0, 38, 4).unwrap();
        assert_eq!(q.iter().collect::<Vec<_>>(), vec![Some(3333), Some(10000), None, None]);
        let d = decimal_int_quotient(&Decimal128Array::from(vec![75, -75]), 1, &Decimal128Array::from(vec![2, 2]), 0).unwrap();
        assert_eq!(d.values().to_vec(), vec![3, -3]);
    }
}
