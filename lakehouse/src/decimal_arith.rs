//! DECIMAL `+`, `-` and `*` without 128-bit overflow checks where none can
//! overflow.
//!
//! DataFusion computes DECIMAL arithmetic on 128-bit integers with a checked
//! operation per row; a checked 128-bit multiplication is a library call, and
//! it was about a quarter of TPC-H Q1's time (`l_extendedprice * (1 -
//! l_discount) * (1 + l_tax)` over 6M rows). Here each batch is computed
//! with 64-by-64-bit products widened to 128 bits (one instruction each),
//! which is exact whenever every operand fits in 64 bits (DECIMAL columns up
//! to 18 digits always do); a batch where one does not is computed by
//! Arrow's checked kernel, as before (which reports an overflow). Results,
//! types and names are those of the operator: an optimizer rule replaces
//! the operator in projections and aggregations with a function computing
//! it this way, named as the operator (`a * b`), so plans and result
//! columns keep their names.
//!
//! `LAKEWAVE_DECIMAL_FAST=off` in the server's environment keeps the
//! operators, for comparisons.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array};
use datafusion::arrow::buffer::{NullBuffer, ScalarBuffer};
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

/// `left op right` over DECIMAL operands.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DecimalArith {
    op: Operator,
    name: &'static str,
    signature: Signature,
}

impl DecimalArith {
    fn udf(op: Operator) -> Option<Arc<ScalarUDF>> {
        static UDFS: OnceLock<[Arc<ScalarUDF>; 3]> = OnceLock::new();
        let at = match op {
            Operator::Plus => 0,
            Operator::Minus => 1,
            Operator::Multiply => 2,
            _ => return None,
        };
        let all = UDFS.get_or_init(|| {
            [(Operator::Plus, "lakewave_decimal_add"), (Operator::Minus, "lakewave_decimal_sub"), (Operator::Multiply, "lakewave_decimal_mul")]
                .map(|(op, name)| {
                    Arc::new(ScalarUDF::new_from_impl(DecimalArith { op, name, signature: Signature::any(2, Volatility::Immutable) }))
                })
        });
        Some(Arc::clone(&all[at]))
    }
}

impl ScalarUDFImpl for DecimalArith {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [l, r] => BinaryTypeCoercer::new(l, &self.op, r).get_result_type(),
            _ => plan_err!("{} takes two arguments", self.name),
        }
    }

    /// Nullable as the operator is: when either operand is.
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let types: Vec<DataType> = args.arg_fields.iter().map(|f| f.data_type().clone()).collect();
        let nullable = args.arg_fields.iter().any(|f| f.is_nullable());
        Ok(Arc::new(Field::new(self.name, self.return_type(&types)?, nullable)))
    }

    /// The operator's own name (`a * b`), so columns keep their names.
    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        match args {
            [l, r] => Ok(format!("{} {} {}", l.schema_name(), self.op, r.schema_name())),
            _ => plan_err!("{} takes two arguments", self.name),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [l, r] = args.args.as_slice() else {
            return plan_err!("{} takes two arguments", self.name);
        };
        let DataType::Decimal128(precision, scale) = args.return_field.data_type().clone() else {
            return plan_err!("{} returns {}", self.name, args.return_field.data_type());
        };
        if let (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)) = (l, r) {
            return self.checked(l, r, args.number_rows);
        }
        let rows = args.number_rows;
        let (Some(lv), Some(rv)) = (Operand::of(l), Operand::of(r)) else {
            return self.checked(l, r, rows);
        };
        let (ls, rs) = (lv.scale, rv.scale);
        // Each operand's factor to the result's scale (sums), or none
        // (products carry the sum of the scales).
        let (lm, rm): (i64, i64) = match self.op {
            Operator::Multiply if ls + rs == scale => (1, 1),
            Operator::Plus | Operator::Minus if scale >= ls && scale >= rs && scale - ls.min(rs) <= 18 => {
                (10i64.pow((scale - ls) as u32), 10i64.pow((scale - rs) as u32))
            }
            _ => return self.checked(l, r, rows),
        };
        // Exact when both operands fit in 64 bits: a product of two such
        // values is below 2^126, a sum of two scaled by at most 10^18 below
        // 2^124; and a 64-by-64-bit product is one instruction, where a
        // checked 128-bit one is a library call. A batch with an operand
        // past 64 bits is computed by Arrow's checked kernel.
        if !(lv.fits() && rv.fits()) {
            return self.checked(l, r, rows);
        }
        let (lm, rm) = (lm as i128, rm as i128);
        let values = match self.op {
            Operator::Multiply => lv.zip(&rv, rows, |a, b| w(a).wrapping_mul(w(b))),
            Operator::Plus => lv.zip(&rv, rows, |a, b| w(a).wrapping_mul(lm).wrapping_add(w(b).wrapping_mul(rm))),
            _ => lv.zip(&rv, rows, |a, b| w(a).wrapping_mul(lm).wrapping_sub(w(b).wrapping_mul(rm))),
        };
        let nulls = NullBuffer::union(lv.nulls.as_ref(), rv.nulls.as_ref());
        let array = Decimal128Array::try_new(values, nulls)?.with_precision_and_scale(precision, scale)?;
        Ok(ColumnarValue::Array(Arc::new(array)))
    }
}

impl DecimalArith {
    /// The operator as DataFusion computes it (Arrow's checked kernels).
    fn checked(&self, l: &ColumnarValue, r: &ColumnarValue, rows: usize) -> Result<ColumnarValue> {
        on_arrays(l, r, rows, |la, ra| {
            Ok(match self.op {
                Operator::Plus => numeric::add(la, ra)?,
                Operator::Minus => numeric::sub(la, ra)?,
                _ => numeric::mul(la, ra)?,
            })
        })
    }
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

/// `v`'s low 64 bits, sign-extended: `v` itself when it fits in 64 bits.
fn w(v: i128) -> i128 {
    (v as i64) as i128
}

/// One operand: an array, or a non-null scalar repeated.
struct Operand {
    values: Values,
    nulls: Option<NullBuffer>,
    scale: i8,
}

enum Values {
    Array(ScalarBuffer<i128>),
    Scalar(i128),
}

impl Operand {
    fn of(v: &ColumnarValue) -> Option<Self> {
        match v {
            ColumnarValue::Array(a) => {
                let DataType::Decimal128(_, scale) = a.data_type() else { return None };
                let a = a.as_primitive::<Decimal128Type>();
                Some(Self { values: Values::Array(a.values().clone()), nulls: a.nulls().cloned(), scale: *scale })
            }
            ColumnarValue::Scalar(ScalarValue::Decimal128(Some(x), _, scale)) => {
                Some(Self { values: Values::Scalar(*x), nulls: None, scale: *scale })
            }
            _ => None,
        }
    }

    /// Whether every value fits in 64 bits (null slots included, which
    /// only makes the answer stricter).
    fn fits(&self) -> bool {
        match &self.values {
            Values::Array(a) => a.iter().fold(true, |fit, x| fit & (w(*x) == *x)),
            Values::Scalar(x) => w(*x) == *x,
        }
    }

    /// `f` over the rows.
    fn zip(&self, other: &Operand, rows: usize, f: impl Fn(i128, i128) -> i128) -> ScalarBuffer<i128> {
        let values: Vec<i128> = match (&self.values, &other.values) {
            (Values::Array(a), Values::Array(b)) => a.iter().zip(b.iter()).map(|(x, y)| f(*x, *y)).collect(),
            (Values::Array(a), Values::Scalar(y)) => a.iter().map(|x| f(*x, *y)).collect(),
            (Values::Scalar(x), Values::Array(b)) => b.iter().map(|y| f(*x, *y)).collect(),
            (Values::Scalar(x), Values::Scalar(y)) => std::iter::repeat_n(f(*x, *y), rows).collect(),
        };
        values.into()
    }
}

/// Replaces DECIMAL `+`, `-`, `*` in projections and aggregations with
/// [`DecimalArith`]. Filters, joins and scans keep the operators: their
/// expressions are what filter pushdown, pruning and the MySQL pushdown
/// read.
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

fn replace(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else { return Ok(Transformed::no(e)) };
    let Some(udf) = DecimalArith::udf(*op) else { return Ok(Transformed::no(e)) };
    let decimal = |x: &Expr| matches!(x.get_type(schema), Ok(DataType::Decimal128(..)));
    if !decimal(left) || !decimal(right) || !matches!(e.get_type(schema), Ok(DataType::Decimal128(..))) {
        return Ok(Transformed::no(e));
    }
    let args = vec![left.as_ref().clone(), right.as_ref().clone()];
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
        assert!(text.contains("lakewave_decimal_mul"), "{text}");
        // 10^37 * 10^37 overflows 128 bits: the checked kernel reports it.
        let sql = "SELECT a * a FROM (VALUES (CAST(10000000000000000000000000000000000000 AS DECIMAL(38,0)))) v(a)";
        let err = fast.sql(sql).await?.collect().await.expect_err("an overflow");
        assert!(err.to_string().to_lowercase().contains("overflow"), "{err}");
        Ok(())
    }
}
