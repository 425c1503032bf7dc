//! DECIMAL `+`, `-` and `*` computed as one expression, on 64-bit
//! integers where nothing can overflow.
//!
//! DataFusion computes DECIMAL arithmetic on 128-bit integers with a checked
//! operation per row and operator, each writing a 128-bit array; a checked
//! 128-bit multiplication is a library call, and it was about a quarter of
//! TPC-H Q1's time (`l_extendedprice * (1 - l_discount) * (1 + l_tax)` over
//! 6M rows). Here a tree of these operators becomes one function,
//! [`DecimalArith`], whose program is computed per batch in the narrowest
//! integers that are exact for it: the largest magnitude of every operand
//! in the batch bounds every intermediate result, and when all bounds are
//! below 2^63 the whole tree is computed on 64-bit integers (no checks, no
//! intermediate 128-bit arrays), else below 2^127 on 128-bit integers
//! without checks; a batch past that is computed operator by operator by
//! Arrow's checked kernels, as DataFusion does (which report an overflow).
//! Results, types and names are those of the operators: an optimizer rule
//! replaces the operators in projections and aggregations with the
//! function, named as the operators (`a * b`), so plans and result columns
//! keep their names.
//!
//! `LAKEWAVE_DECIMAL_FAST=off` in the server's environment keeps the
//! operators, for comparisons.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array};
use datafusion::arrow::buffer::{NullBuffer, ScalarBuffer};
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::kernels::numeric;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, FieldRef};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue, plan_err};
use datafusion::logical_expr::expr::{BinaryExpr, ScalarFunction};
use datafusion::logical_expr::type_coercion::binary::BinaryTypeCoercer;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| !crate::switched_off("LAKEWAVE_DECIMAL_FAST"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Add,
    Sub,
    Mul,
}

impl Op {
    fn of(op: Operator) -> Option<Self> {
        Some(match op {
            Operator::Plus => Op::Add,
            Operator::Minus => Op::Sub,
            Operator::Multiply => Op::Mul,
            _ => return None,
        })
    }

    fn operator(self) -> Operator {
        match self {
            Op::Add => Operator::Plus,
            Op::Sub => Operator::Minus,
            Op::Mul => Operator::Multiply,
        }
    }
}

/// A node of a [`DecimalArith`] program.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Node {
    /// The function's argument of this number (a DECIMAL).
    Arg(usize),
    /// A non-NULL DECIMAL constant: unscaled value, precision, scale.
    Const(i128, u8, i8),
    Op(Op, Box<Node>, Box<Node>),
}

impl Node {
    /// The node's type, as the operators type it.
    fn data_type(&self, args: &[DataType]) -> Result<DataType> {
        match self {
            Node::Arg(i) => match args.get(*i) {
                Some(t) => Ok(t.clone()),
                None => plan_err!("lakewave_decimal has no argument {i}"),
            },
            Node::Const(_, p, s) => Ok(DataType::Decimal128(*p, *s)),
            Node::Op(op, l, r) => BinaryTypeCoercer::new(&l.data_type(args)?, &op.operator(), &r.data_type(args)?).get_result_type(),
        }
    }

    /// The operators' name of the node (`a * b - c`, as DataFusion names
    /// nested operators: without parentheses).
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        Ok(match self {
            Node::Arg(i) => match args.get(*i) {
                Some(e) => e.schema_name().to_string(),
                None => return plan_err!("lakewave_decimal has no argument {i}"),
            },
            Node::Const(v, p, s) => Expr::Literal(ScalarValue::Decimal128(Some(*v), *p, *s), None).schema_name().to_string(),
            Node::Op(op, l, r) => format!("{} {} {}", l.schema_name(args)?, op.operator(), r.schema_name(args)?),
        })
    }

    /// The node with its arguments renumbered from `first`.
    fn shifted(self, first: &[usize]) -> Node {
        match self {
            Node::Arg(i) => Node::Arg(first[i]),
            Node::Op(op, l, r) => Node::Op(op, Box::new(l.shifted(first)), Box::new(r.shifted(first))),
            c => c,
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Node::Arg(i) => write!(f, "#{i}"),
            Node::Const(v, _, s) => write!(f, "{}", ScalarValue::Decimal128(Some(*v), 38, *s)),
            Node::Op(op, l, r) => {
                let side = |n: &Node, f: &mut fmt::Formatter| match n {
                    Node::Op(..) => write!(f, "({n})"),
                    _ => write!(f, "{n}"),
                };
                side(l, f)?;
                write!(f, " {} ", op.operator())?;
                side(r, f)
            }
        }
    }
}

/// DECIMAL `+`, `-` and `*` over its arguments, as one program (see the
/// module).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DecimalArith {
    program: Node,
    /// `lakewave_decimal[<program>]`, arguments numbered `#0`, `#1`...
    name: String,
    signature: Signature,
}

impl DecimalArith {
    fn udf(program: Node, args: usize) -> Arc<ScalarUDF> {
        let name = format!("lakewave_decimal[{program}]");
        Arc::new(ScalarUDF::new_from_impl(DecimalArith { program, name, signature: Signature::any(args, Volatility::Immutable) }))
    }

    /// `e`'s program and arguments when it is a call of this function.
    fn of(e: &Expr) -> Option<(&Node, &[Expr])> {
        let Expr::ScalarFunction(f) = e else { return None };
        let any: &dyn Any = f.func.inner().as_ref();
        any.downcast_ref::<DecimalArith>().map(|d| (&d.program, f.args.as_slice()))
    }
}

impl ScalarUDFImpl for DecimalArith {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        self.program.data_type(args)
    }

    /// Nullable as the operators are: when any operand is.
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let types: Vec<DataType> = args.arg_fields.iter().map(|f| f.data_type().clone()).collect();
        let nullable = args.arg_fields.iter().any(|f| f.is_nullable());
        Ok(Arc::new(Field::new(&self.name, self.return_type(&types)?, nullable)))
    }

    /// The operators' own name (`a * b`), so columns keep their names.
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.program.schema_name(args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let want = args.return_field.data_type().clone();
        let DataType::Decimal128(precision, scale) = want else {
            return plan_err!("{} returns {}", self.name, want);
        };
        let rows = args.number_rows;
        let types: Vec<DataType> = args.args.iter().map(|a| a.data_type()).collect();
        let all_scalars = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let operands: Option<Vec<Operand>> = args.args.iter().map(Operand::of).collect();
        let (Some(operands), false) = (operands, all_scalars) else {
            return checked(&self.program, &args.args, rows, &want);
        };
        // Once per argument, however often the program reads it.
        let bounds: Vec<u128> = operands.iter().map(Operand::bound).collect();
        let Some(typed) = Typed::of(&self.program, &bounds, &types)? else {
            return checked(&self.program, &args.args, rows, &want);
        };
        let values: ScalarBuffer<i128> = if typed.bound() <= i64::MAX as u128 {
            match typed.eval::<i64>(&operands) {
                Value::Array(v) => v.into_iter().map(i128::from).collect::<Vec<_>>().into(),
                Value::Scalar(x) => vec![i128::from(x); rows].into(),
            }
        } else if typed.bound() <= i128::MAX as u128 {
            match typed.eval::<i128>(&operands) {
                Value::Array(v) => v.into(),
                Value::Scalar(x) => vec![x; rows].into(),
            }
        } else {
            return checked(&self.program, &args.args, rows, &want);
        };
        let nulls = operands.iter().fold(None, |acc, o| NullBuffer::union(acc.as_ref(), o.nulls.as_ref()));
        let array = Decimal128Array::try_new(values, nulls)?.with_precision_and_scale(precision, scale)?;
        Ok(ColumnarValue::Array(Arc::new(array)))
    }
}

/// The program computed operator by operator as DataFusion computes it
/// (Arrow's checked kernels), the result given the function's type.
fn checked(program: &Node, args: &[ColumnarValue], rows: usize, want: &DataType) -> Result<ColumnarValue> {
    fn eval(node: &Node, args: &[ColumnarValue], rows: usize) -> Result<ColumnarValue> {
        Ok(match node {
            Node::Arg(i) => args[*i].clone(),
            Node::Const(v, p, s) => ColumnarValue::Scalar(ScalarValue::Decimal128(Some(*v), *p, *s)),
            Node::Op(op, l, r) => {
                let (l, r) = (eval(l, args, rows)?, eval(r, args, rows)?);
                on_arrays(&l, &r, rows, |la, ra| {
                    Ok(match op {
                        Op::Add => numeric::add(la, ra)?,
                        Op::Sub => numeric::sub(la, ra)?,
                        Op::Mul => numeric::mul(la, ra)?,
                    })
                })?
            }
        })
    }
    let out = eval(program, args, rows)?;
    if out.data_type() == *want {
        return Ok(out);
    }
    Ok(match out {
        ColumnarValue::Array(a) => ColumnarValue::Array(cast(&a, want)?),
        ColumnarValue::Scalar(s) => ColumnarValue::Scalar(s.cast_to(want)?),
    })
}

/// `f` over two operands as arrays of `rows` rows; two scalars make one
/// row, and a scalar result.
pub(crate) fn on_arrays(
    l: &ColumnarValue,
    r: &ColumnarValue,
    rows: usize,
    f: impl FnOnce(&ArrayRef, &ArrayRef) -> Result<ArrayRef>,
) -> Result<ColumnarValue> {
    let scalars = matches!((l, r), (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)));
    let rows = if scalars { 1 } else { rows };
    let out = f(&l.to_array(rows)?, &r.to_array(rows)?)?;
    Ok(if scalars { ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?) } else { ColumnarValue::Array(out) })
}

/// One argument of a batch: an array, or a non-null scalar repeated.
struct Operand {
    values: Values,
    nulls: Option<NullBuffer>,
}

enum Values {
    Array(ScalarBuffer<i128>),
    Scalar(i128),
}

impl Operand {
    fn of(v: &ColumnarValue) -> Option<Self> {
        match v {
            ColumnarValue::Array(a) => {
                let a = a.as_primitive_opt::<Decimal128Type>()?;
                Some(Self { values: Values::Array(a.values().clone()), nulls: a.nulls().cloned() })
            }
            ColumnarValue::Scalar(ScalarValue::Decimal128(Some(x), _, _)) => Some(Self { values: Values::Scalar(*x), nulls: None }),
            _ => None,
        }
    }

    /// A bound of the values' magnitudes: the power of two above the
    /// largest (null slots included; either only loosens the bound). A
    /// power of two because it is cheap: the magnitudes' bits OR-ed
    /// together, on the 64-bit halves of the values.
    fn bound(&self) -> u128 {
        match &self.values {
            Values::Array(a) => {
                // `x ^ sign` is |x| for x >= 0 and |x| - 1 below: its bit
                // length bounds |x| by the next power of two.
                let halves: &[u64] = a.inner().typed_data();
                let (mut lo, mut hi) = (0u64, 0u64);
                for pair in halves.chunks_exact(2) {
                    let sign = ((pair[1] as i64) >> 63) as u64;
                    lo |= pair[0] ^ sign;
                    hi |= pair[1] ^ sign;
                }
                let bits = 128 - ((u128::from(hi) << 64) | u128::from(lo)).leading_zeros();
                1u128 << bits.min(127)
            }
            Values::Scalar(x) => x.unsigned_abs(),
        }
    }
}

/// A batch's program: each node with the bound of its values' magnitudes,
/// and for `+`, `-` the factors bringing the operands to the result's scale.
enum Typed {
    Arg(usize, u128),
    Const(i128),
    Op { op: Op, l: Box<Typed>, r: Box<Typed>, factors: (i128, i128), bound: u128 },
}

impl Typed {
    /// None when a node cannot be computed this way (a sum whose scales
    /// are more than 18 digits apart, or a product whose scale is not the
    /// sum of its operands').
    fn of(node: &Node, bounds: &[u128], types: &[DataType]) -> Result<Option<Typed>> {
        Ok(Some(match node {
            Node::Arg(i) => Typed::Arg(*i, bounds[*i]),
            Node::Const(v, ..) => Typed::Const(*v),
            Node::Op(op, l, r) => {
                let scale = |n: &Node| -> Result<i8> {
                    match n.data_type(types)? {
                        DataType::Decimal128(_, s) => Ok(s),
                        t => plan_err!("lakewave_decimal over {t}"),
                    }
                };
                let (ls, rs, s) = (scale(l)?, scale(r)?, scale(node)?);
                let factors = match op {
                    Op::Mul if ls + rs == s => (1, 1),
                    Op::Add | Op::Sub if s >= ls && s >= rs && s - ls.min(rs) <= 18 => {
                        (10i128.pow((s - ls) as u32), 10i128.pow((s - rs) as u32))
                    }
                    _ => return Ok(None),
                };
                let (Some(l), Some(r)) = (Typed::of(l, bounds, types)?, Typed::of(r, bounds, types)?) else {
                    return Ok(None);
                };
                let (lb, rb) = (l.bound(), r.bound());
                let bound = match op {
                    Op::Mul => lb.saturating_mul(rb),
                    _ => lb.saturating_mul(factors.0 as u128).saturating_add(rb.saturating_mul(factors.1 as u128)),
                };
                // Every node's bound is at most its parent's but for
                // products by zero: keep the largest below.
                let bound = bound.max(lb).max(rb);
                Typed::Op { op: *op, l: Box::new(l), r: Box::new(r), factors, bound }
            }
        }))
    }

    /// The largest magnitude of this node's values and of every node below.
    fn bound(&self) -> u128 {
        match self {
            Typed::Arg(_, b) => *b,
            Typed::Const(v) => v.unsigned_abs(),
            Typed::Op { bound, .. } => *bound,
        }
    }

    /// The node's values in `T`, exact when [`Self::bound`] fits `T`.
    fn eval<T: Lane>(&self, operands: &[Operand]) -> Value<T> {
        match self {
            Typed::Arg(i, _) => match &operands[*i].values {
                Values::Array(a) => Value::Array(a.iter().map(|x| T::from_i128(*x)).collect()),
                Values::Scalar(x) => Value::Scalar(T::from_i128(*x)),
            },
            Typed::Const(v) => Value::Scalar(T::from_i128(*v)),
            Typed::Op { op, l, r, factors: (lm, rm), .. } => {
                let (l, r) = (l.eval::<T>(operands), r.eval::<T>(operands));
                let (lm, rm) = (T::from_i128(*lm), T::from_i128(*rm));
                match op {
                    Op::Mul => Value::zip(l, r, |a, b| a.mul(b)),
                    Op::Add if lm.is_one() && rm.is_one() => Value::zip(l, r, |a, b| a.add(b)),
                    Op::Sub if lm.is_one() && rm.is_one() => Value::zip(l, r, |a, b| a.sub(b)),
                    Op::Add => Value::zip(l, r, |a, b| a.mul(lm).add(b.mul(rm))),
                    Op::Sub => Value::zip(l, r, |a, b| a.mul(lm).sub(b.mul(rm))),
                }
            }
        }
    }
}

/// A node's values for a batch.
enum Value<T> {
    Array(Vec<T>),
    Scalar(T),
}

impl<T: Lane> Value<T> {
    /// `f` over two nodes' values, reusing an array's memory.
    fn zip(l: Value<T>, r: Value<T>, f: impl Fn(T, T) -> T) -> Value<T> {
        match (l, r) {
            (Value::Array(mut a), Value::Array(b)) => {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x = f(*x, *y));
                Value::Array(a)
            }
            (Value::Array(mut a), Value::Scalar(y)) => {
                a.iter_mut().for_each(|x| *x = f(*x, y));
                Value::Array(a)
            }
            (Value::Scalar(x), Value::Array(mut b)) => {
                b.iter_mut().for_each(|y| *y = f(x, *y));
                Value::Array(b)
            }
            (Value::Scalar(x), Value::Scalar(y)) => Value::Scalar(f(x, y)),
        }
    }
}

/// The integers a program is computed in: wrapping arithmetic, exact
/// whenever the bounds say nothing wraps.
trait Lane: Copy {
    fn from_i128(v: i128) -> Self;
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn is_one(self) -> bool;
}

macro_rules! lane {
    ($t:ty) => {
        impl Lane for $t {
            fn from_i128(v: i128) -> Self {
                v as $t
            }
            fn add(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            fn sub(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            fn mul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            fn is_one(self) -> bool {
                self == 1
            }
        }
    };
}

lane!(i64);
lane!(i128);

/// Replaces DECIMAL `+`, `-`, `*` in projections and aggregations with
/// [`DecimalArith`], one function per tree of them. Filters, joins and
/// scans keep the operators: their expressions are what filter pushdown,
/// pruning and the MySQL pushdown read.
#[derive(Debug, Default)]
pub struct FastDecimalArithmetic;

impl OptimizerRule for FastDecimalArithmetic {
    fn name(&self) -> &str {
        "lakewave_fast_decimal_arithmetic"
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        if !enabled() {
            return Ok(Transformed::no(plan));
        }
        plan.transform_up_with_subqueries(|node| {
            let schema = match &node {
                LogicalPlan::Projection(p) => Arc::clone(p.input.schema()),
                LogicalPlan::Aggregate(a) => Arc::clone(a.input.schema()),
                _ => return Ok(Transformed::no(node)),
            };
            node.map_expressions(|e| e.transform_up(|e| replace(e, &schema)))
        })
    }
}

/// An operator over DECIMAL operands as a [`DecimalArith`] call, taking in
/// the programs of operands that already are one (bottom-up, so a whole
/// tree becomes one call).
fn replace(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else { return Ok(Transformed::no(e)) };
    let Some(op) = Op::of(*op) else { return Ok(Transformed::no(e)) };
    let decimal = |x: &Expr| matches!(x.get_type(schema), Ok(DataType::Decimal128(..)));
    if !decimal(left) || !decimal(right) || !matches!(e.get_type(schema), Ok(DataType::Decimal128(..))) {
        return Ok(Transformed::no(e));
    }
    let mut args: Vec<Expr> = Vec::new();
    let mut side = |x: &Expr| -> Node {
        if let Expr::Literal(ScalarValue::Decimal128(Some(v), p, s), _) = x {
            return Node::Const(*v, *p, *s);
        }
        // An argument met twice is passed once, unless it is volatile
        // (`rand()` twice is two values).
        let mut place = |a: &Expr| match args.iter().position(|b| b == a && !a.is_volatile()) {
            Some(i) => i,
            None => {
                args.push(a.clone());
                args.len() - 1
            }
        };
        match DecimalArith::of(x) {
            Some((program, inner)) => {
                let first: Vec<usize> = inner.iter().map(&mut place).collect();
                program.clone().shifted(&first)
            }
            None => Node::Arg(place(x)),
        }
    };
    let program = Node::Op(op, Box::new(side(left)), Box::new(side(right)));
    if args.is_empty() {
        return Ok(Transformed::no(e));
    }
    let udf = DecimalArith::udf(program, args.len());
    Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(udf, args))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::prelude::SessionContext;

    fn contexts() -> (SessionContext, SessionContext) {
        let fast = SessionStateBuilder::new().with_default_features().with_optimizer_rule(Arc::new(FastDecimalArithmetic)).build();
        (SessionContext::new_with_state(fast), SessionContext::new())
    }

    async fn both(sql: &str) -> Result<(String, String)> {
        let (fast, plain) = contexts();
        let mut out = Vec::new();
        for ctx in [&fast, &plain] {
            ctx.sql(
                "CREATE TABLE t AS SELECT * FROM (VALUES \
                 (CAST(104949.50 AS DECIMAL(15,2)), CAST(0.04 AS DECIMAL(15,2)), CAST(0.08 AS DECIMAL(15,2)), 'A'), \
                 (CAST(901.00 AS DECIMAL(15,2)), CAST(0.10 AS DECIMAL(15,2)), CAST(NULL AS DECIMAL(15,2)), 'A'), \
                 (CAST(-2.50 AS DECIMAL(15,2)), CAST(0.00 AS DECIMAL(15,2)), CAST(0.02 AS DECIMAL(15,2)), 'B'), \
                 (CAST(NULL AS DECIMAL(15,2)), CAST(0.05 AS DECIMAL(15,2)), CAST(0.01 AS DECIMAL(15,2)), 'B'), \
                 (CAST(9999999999999.99 AS DECIMAL(15,2)), CAST(0.07 AS DECIMAL(15,2)), CAST(0.00 AS DECIMAL(15,2)), 'C')) \
                 AS v(price, discount, tax, flag)",
            )
            .await?
            .collect()
            .await?;
            let batches = ctx.sql(sql).await?.collect().await?;
            out.push(pretty_format_batches(&batches)?.to_string());
        }
        Ok((out.remove(0), out.remove(0)))
    }

    #[tokio::test]
    async fn results_and_names_are_the_operators() -> Result<()> {
        for sql in [
            "SELECT flag, sum(price * (1 - discount) * (1 + tax)), sum(price * (1 - discount)), avg(price + tax) \
             FROM t GROUP BY flag ORDER BY flag",
            "SELECT price * discount, price - tax * 3, tax - price, discount + 0.005, price * price FROM t ORDER BY price",
            // Trees of operators as one program: on 64-bit integers (the
            // large price filtered out), on 128-bit ones (it is in the batch).
            "SELECT price * (1 - discount) * (1 + tax) - price, (price - discount) * 2.5 + tax * tax, price * price * discount \
             FROM t WHERE flag <> 'C' ORDER BY price",
            "SELECT price * (1 - discount) * (1 + tax) - price, (price - discount) * 2.5 + tax * tax, price * price * discount \
             FROM t ORDER BY price",
            "SELECT flag, sum(price * (1 - discount) * (1 + tax)), sum((price + 0.005) * (price - 0.005)) FROM t GROUP BY flag ORDER BY flag",
            // An operand past 64 bits: the batch goes to the checked kernel.
            "SELECT price * CAST(100000000000000000000 AS DECIMAL(38,0)), price + CAST(100000000000000000000 AS DECIMAL(38,0)) FROM t",
        ] {
            let (fast, plain) = both(sql).await?;
            assert_eq!(fast, plain, "{sql}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn the_rule_applies_and_overflow_is_still_an_error() -> Result<()> {
        let (fast, _) = contexts();
        let plan = fast.sql("EXPLAIN SELECT sum(a * b) FROM (VALUES (CAST(1.5 AS DECIMAL(10,2)), CAST(2 AS DECIMAL(10,0)))) v(a, b)").await?;
        let text = pretty_format_batches(&plan.collect().await?)?.to_string();
        assert!(text.contains("lakewave_decimal[#0 * #1]"), "{text}");
        // A tree of operators is one call, its operands numbered once.
        let plan = fast.sql("EXPLAIN SELECT a * (1 - b) * (1 + a) FROM (VALUES (CAST(1.5 AS DECIMAL(10,2)), CAST(2 AS DECIMAL(10,2)))) v(a, b)").await?;
        let text = pretty_format_batches(&plan.collect().await?)?.to_string();
        assert_eq!(text.matches("lakewave_decimal[(#0 * (1 - #1)) * (1 + #0)]").count(), 2, "{text}");
        // A volatile operand met twice is two arguments.
        let plan = fast.sql("EXPLAIN SELECT CAST(random() AS DECIMAL(10,2)) * CAST(random() AS DECIMAL(10,2))").await?;
        let text = pretty_format_batches(&plan.collect().await?)?.to_string();
        assert!(text.contains("lakewave_decimal[#0 * #1]"), "{text}");
        // 10^37 * 10^37 overflows 128 bits: the checked kernel reports it.
        let sql = "SELECT a * a FROM (VALUES (CAST(10000000000000000000000000000000000000 AS DECIMAL(38,0)))) v(a)";
        let err = fast.sql(sql).await?.collect().await.expect_err("an overflow");
        assert!(err.to_string().to_lowercase().contains("overflow"), "{err}");
        Ok(())
    }
}
