//! MySQL SQL that DataFusion does not understand as such, rewritten on the
//! parsed statement before planning: `IF()`, `UCASE()`/`LCASE()`,
//! `LOCATE()`, `MOD()`, `a DIV b`, `CAST(x AS SIGNED|UNSIGNED [INTEGER])`,
//! `CONVERT(x, type)`.
//!
//! Numbers: a literal with a decimal point is an exact DECIMAL, as in MySQL
//! (the engine parses it so); one with an exponent (`1e3`, `2.5E-4`) is a
//! DOUBLE, written here as a cast of its text.
//!
//! MySQL compares strings case-insensitively under its default collations.
//! Lakewave keeps exact comparisons for lake data (so filters stay pushed
//! down into scans), but applies MySQL's rule to `information_schema`
//! queries, which connectors write assuming it (`IS_NULLABLE = 'yes'`).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, CaseWhen, DataType, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments,
    Ident, ObjectName, Statement, Value, visit_expressions_mut,
};
use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;

/// A call's plain (unnamed) arguments.
pub(crate) fn args(f: &Function) -> Vec<Expr> {
    match &f.args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
                _ => None,
            })
            .collect(),
        _ => vec![],
    }
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    use datafusion::sql::sqlparser::ast::FunctionArgumentList;
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args.into_iter().map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e))).collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// `GROUP_CONCAT([DISTINCT] a[, b ...] [ORDER BY ...] [SEPARATOR s])` as
/// `string_agg`: the arguments as text joined (a row with a NULL argument is
/// skipped, as MySQL skips it), DISTINCT and ORDER BY kept, `,` by default.
fn group_concat(f: &Function, a: Vec<Expr>) -> Option<Expr> {
    use datafusion::sql::sqlparser::ast::{FunctionArgumentClause, FunctionArgumentList};
    let FunctionArguments::List(list) = &f.args else { return None };
    let text = |e: Expr| call(MYSQL_TEXT, vec![e]);
    let single = (a.len() == 1).then(|| a[0].clone());
    let value = a
        .into_iter()
        .map(text)
        .reduce(|l, r| Expr::BinaryOp { left: Box::new(l), op: BinaryOperator::StringConcat, right: Box::new(r) })?;
    let mut separator = Expr::value(Value::SingleQuotedString(",".into()));
    let mut clauses = Vec::new();
    for c in &list.clauses {
        match c {
            FunctionArgumentClause::Separator(v) => separator = Expr::value(v.value.clone()),
            // With DISTINCT, ordering by the argument itself orders by its
            // text form (DataFusion wants DISTINCT's ORDER BY among the
            // arguments); without, the order is the column's own.
            FunctionArgumentClause::OrderBy(order) => {
                let mut order = order.clone();
                for o in order.iter_mut() {
                    if list.duplicate_treatment.is_some() && single.as_ref() == Some(&o.expr) {
                        o.expr = value.clone();
                    }
                }
                clauses.push(FunctionArgumentClause::OrderBy(order));
            }
            other => clauses.push(other.clone()),
        }
    }
    Some(Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new("string_agg")]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: list.duplicate_treatment,
            args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(value)), FunctionArg::Unnamed(FunctionArgExpr::Expr(separator))],
            clauses,
        }),
        filter: f.filter.clone(),
        null_treatment: None,
        over: None,
        within_group: vec![],
    }))
}

fn case(cond: Expr, then: Expr, otherwise: Expr) -> Expr {
    Expr::Case {
        case_token: AttachedToken::empty(),
        end_token: AttachedToken::empty(),
        operand: None,
        conditions: vec![CaseWhen { condition: cond, result: then }],
        else_result: Some(Box::new(otherwise)),
    }
}

/// MySQL cast targets DataFusion names differently: `SIGNED`/`UNSIGNED`
/// are BIGINTs, `DATETIME` is a timestamp without a zone.
fn integer_type(dt: &DataType) -> Option<DataType> {
    match dt {
        DataType::Signed | DataType::SignedInteger => Some(DataType::BigInt(None)),
        DataType::Unsigned | DataType::UnsignedInteger => Some(DataType::BigIntUnsigned(None)),
        DataType::Datetime(p) => Some(DataType::Timestamp(*p, datafusion::sql::sqlparser::ast::TimezoneInfo::None)),
        _ => None,
    }
}

/// `CHAR`, `VARCHAR`, `TEXT` and the like: MySQL's text of a value.
fn is_text_type(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Char(_) | DataType::Varchar(_) | DataType::Text | DataType::String(_) | DataType::CharacterVarying(_) | DataType::Nvarchar(_)
    )
}

fn is_string_literal(e: &Expr) -> bool {
    matches!(e, Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_) | Value::DoubleQuotedString(_)))
}

/// Whether an expression is a condition by its form (a comparison, a test,
/// a logical operation): MySQL gives those the integer 1 or 0.
fn is_condition(e: &Expr) -> bool {
    match e {
        Expr::BinaryOp { op, .. } => matches!(
            op,
            BinaryOperator::Eq
                | BinaryOperator::NotEq
                | BinaryOperator::Lt
                | BinaryOperator::LtEq
                | BinaryOperator::Gt
                | BinaryOperator::GtEq
                | BinaryOperator::Spaceship
                | BinaryOperator::And
                | BinaryOperator::Or
                | BinaryOperator::Xor
        ),
        Expr::UnaryOp { op: datafusion::sql::sqlparser::ast::UnaryOperator::Not, .. } => true,
        Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::IsTrue(_)
        | Expr::IsNotTrue(_)
        | Expr::IsFalse(_)
        | Expr::IsNotFalse(_)
        | Expr::IsDistinctFrom(..)
        | Expr::IsNotDistinctFrom(..)
        | Expr::InList { .. }
        | Expr::InSubquery { .. }
        | Expr::Between { .. }
        | Expr::Like { .. }
        | Expr::ILike { .. }
        | Expr::RLike { .. }
        | Expr::Exists { .. } => true,
        Expr::Nested(inner) => is_condition(inner),
        _ => false,
    }
}

/// `SUM(a > b)` and `AVG(flag IS NULL)` (also as window functions): the
/// condition becomes a BIGINT, as in MySQL, since DataFusion has no sum or
/// average of booleans.
fn count_conditions(f: &mut Function) {
    let name = f.name.to_string().to_lowercase();
    if !matches!(name.as_str(), "sum" | "avg") {
        return;
    }
    let FunctionArguments::List(list) = &mut f.args else { return };
    for arg in list.args.iter_mut() {
        if let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = arg {
            if is_condition(e) {
                let condition = std::mem::replace(e, Expr::value(Value::Null));
                *e = Expr::Cast {
                    kind: datafusion::sql::sqlparser::ast::CastKind::Cast,
                    expr: Box::new(condition),
                    data_type: DataType::BigInt(None),
                    array: false,
                    format: None,
                };
            }
        }
    }
}

fn rewrite_expr(e: &mut Expr, case_insensitive: bool) {
    if let Expr::Function(f) = e {
        count_conditions(f);
    }
    let replacement = match e {
        Expr::Function(f) => {
            let name = f.name.to_string().to_lowercase();
            let a = args(f);
            match (name.as_str(), a.len()) {
                ("if", 3) => {
                    let mut a = a.into_iter();
                    let (c, t, o) = (a.next(), a.next(), a.next());
                    match (c, t, o) {
                        (Some(c), Some(t), Some(o)) => Some(case(c, t, o)),
                        _ => None,
                    }
                }
                ("group_concat", n) if n >= 1 => group_concat(f, a),
                ("mod", 2) => {
                    let mut a = a.into_iter();
                    match (a.next(), a.next()) {
                        (Some(l), Some(r)) => Some(Expr::BinaryOp { left: Box::new(l), op: BinaryOperator::Modulo, right: Box::new(r) }),
                        _ => None,
                    }
                }
                ("ucase", 1) => Some(call("upper", a)),
                ("lcase", 1) => Some(call("lower", a)),
                ("locate" | "position", 2) => Some(call("strpos", vec![a[1].clone(), a[0].clone()])),
                ("locate", 3) => {
                    // Position of needle in haystack from pos on, 0 if absent.
                    let tail = call("substr", vec![a[1].clone(), a[2].clone()]);
                    let found = call("strpos", vec![tail, a[0].clone()]);
                    let zero = Expr::value(Value::Number("0".into(), false));
                    let shifted = Expr::BinaryOp {
                        left: Box::new(Expr::BinaryOp {
                            left: Box::new(found.clone()),
                            op: BinaryOperator::Plus,
                            right: Box::new(a[2].clone()),
                        }),
                        op: BinaryOperator::Minus,
                        right: Box::new(Expr::value(Value::Number("1".into(), false))),
                    };
                    let absent = Expr::BinaryOp { left: Box::new(found), op: BinaryOperator::Eq, right: Box::new(zero.clone()) };
                    Some(case(absent, zero, shifted))
                }
                _ => None,
            }
        }
        Expr::Cast { data_type, expr, .. } => {
            if let Some(t) = integer_type(data_type) {
                *data_type = t;
                None
            } else if is_text_type(data_type) {
                Some(call(MYSQL_TEXT, vec![(**expr).clone()]))
            } else {
                None
            }
        }
        Expr::Convert { expr, data_type: Some(dt), charset: None, .. } if is_text_type(dt) => {
            Some(call(MYSQL_TEXT, vec![(**expr).clone()]))
        }
        Expr::Convert { expr, data_type: Some(dt), charset: None, .. } => {
            let data_type = integer_type(dt).unwrap_or_else(|| dt.clone());
            Some(Expr::Cast {
                kind: datafusion::sql::sqlparser::ast::CastKind::Cast,
                expr: expr.clone(),
                data_type,
                array: false,
                format: None,
            })
        }
        Expr::Convert { expr, data_type: None, .. } => Some((**expr).clone()),
        Expr::Value(v) if matches!(&v.value, Value::Number(n, _) if n.contains(['e', 'E'])) => {
            let Value::Number(n, _) = &v.value else { return };
            Some(Expr::Cast {
                kind: datafusion::sql::sqlparser::ast::CastKind::Cast,
                expr: Box::new(Expr::value(Value::SingleQuotedString(n.clone()))),
                data_type: DataType::Double(datafusion::sql::sqlparser::ast::ExactNumberInfo::None),
                array: false,
                format: None,
            })
        }
        Expr::BinaryOp { left, op: BinaryOperator::MyIntegerDivide, right } => {
            Some(call(lakehouse::mysql_arith::INT_DIV, vec![(**left).clone(), (**right).clone()]))
        }
        Expr::BinaryOp { left, op: op @ (BinaryOperator::Eq | BinaryOperator::NotEq), right }
            if case_insensitive && (is_string_literal(left) || is_string_literal(right)) =>
        {
            Some(Expr::BinaryOp {
                left: Box::new(call("lower", vec![(**left).clone()])),
                op: op.clone(),
                right: Box::new(call("lower", vec![(**right).clone()])),
            })
        }
        _ => None,
    };
    if let Some(r) = replacement {
        *e = r;
    }
}

/// Rewrites MySQL-only constructs in place.
pub fn rewrite(statement: &mut Statement, information_schema: bool) {
    let _ = visit_expressions_mut(statement, |e| {
        rewrite_expr(e, information_schema);
        ControlFlow::<()>::Continue(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::MySqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn rewritten(sql: &str, info: bool) -> String {
        let mut s = Parser::parse_sql(&MySqlDialect {}, sql).expect("parses").remove(0);
        rewrite(&mut s, info);
        s.to_string()
    }

    #[test]
    fn mysql_functions() {
        assert_eq!(rewritten("SELECT IF(a = 1, 'x', 'y')", false), "SELECT CASE WHEN a = 1 THEN 'x' ELSE 'y' END");
        assert_eq!(rewritten("SELECT UCASE(a), LOCATE('b', a)", false), "SELECT upper(a), strpos(a, 'b')");
        assert_eq!(rewritten("SELECT CAST(a AS SIGNED INTEGER), CONVERT(b, UNSIGNED)", false), "SELECT CAST(a AS BIGINT), CAST(b AS BIGINT UNSIGNED)");
        assert_eq!(rewritten("SELECT 1 WHERE t = 'YES'", true), "SELECT 1 WHERE lower(t) = lower('YES')");
        assert_eq!(rewritten("SELECT 1 WHERE t = 'YES'", false), "SELECT 1 WHERE t = 'YES'");
        assert_eq!(rewritten("SELECT 1e3, 2.5E-4, 0.5", false), "SELECT CAST('1e3' AS DOUBLE), CAST('2.5E-4' AS DOUBLE), 0.5");
    }
}

/// `mysql_text(x)`: `x` as MySQL writes it as text, for `CAST(x AS CHAR)`
/// and `GROUP_CONCAT`. DataFusion's cast writes timestamps in ISO form
/// (`2024-01-01T10:00:00`); MySQL separates date and time with a space and
/// shows microseconds only when there are some.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MysqlText {
    signature: datafusion::logical_expr::Signature,
}

impl Default for MysqlText {
    fn default() -> Self {
        MysqlText { signature: datafusion::logical_expr::Signature::any(1, datafusion::logical_expr::Volatility::Immutable) }
    }
}

pub const MYSQL_TEXT: &str = "mysql_text";

impl datafusion::logical_expr::ScalarUDFImpl for MysqlText {
    fn name(&self) -> &str {
        MYSQL_TEXT
    }

    fn signature(&self) -> &datafusion::logical_expr::Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[datafusion::arrow::datatypes::DataType]) -> datafusion::error::Result<datafusion::arrow::datatypes::DataType> {
        Ok(datafusion::arrow::datatypes::DataType::Utf8)
    }

    fn invoke_with_args(&self, args: datafusion::logical_expr::ScalarFunctionArgs) -> datafusion::error::Result<datafusion::logical_expr::ColumnarValue> {
        use datafusion::arrow::array::{Array, ArrayRef, StringBuilder, TimestampMicrosecondArray};
        use datafusion::arrow::compute::cast;
        use datafusion::arrow::datatypes::{DataType as Arrow, TimeUnit};
        use datafusion::logical_expr::ColumnarValue;
        let scalar = matches!(args.args[0], ColumnarValue::Scalar(_));
        let input = args.args[0].to_array(args.number_rows)?;
        let out: ArrayRef = match input.data_type() {
            Arrow::Timestamp(_, tz) => {
                // Timestamps with a zone show in UTC, as DataFusion computes.
                let micros = cast(&input, &Arrow::Timestamp(TimeUnit::Microsecond, tz.clone()))?;
                let micros = micros
                    .as_any()
                    .downcast_ref::<TimestampMicrosecondArray>()
                    .ok_or_else(|| datafusion::error::DataFusionError::Internal("timestamp cast".into()))?;
                let mut b = StringBuilder::with_capacity(micros.len(), micros.len() * 26);
                for i in 0..micros.len() {
                    if micros.is_null(i) {
                        b.append_null();
                        continue;
                    }
                    let v = micros.value(i);
                    match chrono::DateTime::from_timestamp_micros(v) {
                        Some(t) if v.rem_euclid(1_000_000) != 0 => b.append_value(t.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string()),
                        Some(t) => b.append_value(t.naive_utc().format("%Y-%m-%d %H:%M:%S").to_string()),
                        None => b.append_null(),
                    }
                }
                std::sync::Arc::new(b.finish())
            }
            _ => cast(&input, &Arrow::Utf8)?,
        };
        Ok(if scalar {
            ColumnarValue::Scalar(datafusion::scalar::ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        })
    }
}
