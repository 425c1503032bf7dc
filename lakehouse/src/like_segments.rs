//! `LIKE` patterns with `%` inside them, matched by searching for their
//! pieces in order.
//!
//! Arrow matches a pattern without wildcards, `abc%`, `%abc` and `%abc%`
//! with string searches, but any other pattern (`%special%requests%`,
//! TPC-H Q13) through a regular expression built from it, which on
//! `o_comment` ran about five times as long as the search for one piece
//! (1.5M rows of the loaded copy at SF 1: 111 against 21 ms).
//! [`LikeSegments`] replaces a filter's `LIKE` whose pattern has no `_` and
//! no escapes, and that Arrow would match with a regular expression, by
//! [`SegmentsLike`]: the pieces between the `%` found one after the other
//! with `memchr`'s substring search (the leftmost match of each piece
//! leaves the most room for the next, so no backtracking is needed), the
//! first piece anchored at the start and the last at the end when the
//! pattern does not begin or end with `%`. Text, large text, text views
//! and dictionaries of them; NULL stays NULL; `EXPLAIN` shows the `LIKE`.
//! The rule runs first, on the filters the planner made, so filters pushed
//! into scans afterwards carry the new predicate.
//!
//! `LAKEWAVE_LIKE_SEGMENTS=off` in the server's environment turns it off.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Result, ScalarValue, internal_err};
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{LikeExpr, Literal};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::FilterExec;
use memchr::memmem::Finder;

#[derive(Debug, Default)]
pub struct LikeSegments;

/// Puts [`LikeSegments`] first: before filters are pushed into scans.
pub fn insert_rule(rules: &mut Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>>) {
    if !crate::switched_off("LAKEWAVE_LIKE_SEGMENTS") {
        rules.insert(0, Arc::new(LikeSegments));
    }
}

impl PhysicalOptimizerRule for LikeSegments {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(filter) = node.downcast_ref::<FilterExec>() else { return Ok(Transformed::no(node)) };
            let predicate = Arc::clone(filter.predicate()).transform_up(|e| {
                let Some(like) = e.downcast_ref::<LikeExpr>() else { return Ok(Transformed::no(e)) };
                Ok(match SegmentsLike::of(like, Arc::clone(&e)) {
                    Some(s) => Transformed::yes(Arc::new(s) as Arc<dyn PhysicalExpr>),
                    None => Transformed::no(e),
                })
            })?;
            if !predicate.transformed {
                return Ok(Transformed::no(node));
            }
            let rebuilt = crate::filter_with_predicate(filter, predicate.data)?;
            Ok(Transformed::yes(Arc::new(rebuilt) as Arc<dyn ExecutionPlan>))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "LikeSegments"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The pieces of a pattern made of text and `%` only, when Arrow would
/// match it with a regular expression: (pieces, anchored at the start,
/// anchored at the end).
fn segments(pattern: &str) -> Option<(Vec<String>, bool, bool)> {
    if pattern.contains(['_', '\\']) {
        return None;
    }
    let pieces: Vec<String> = pattern.split('%').filter(|p| !p.is_empty()).map(str::to_string).collect();
    let (start, end) = (!pattern.starts_with('%'), !pattern.ends_with('%'));
    // No `%`, `abc%`, `%abc`, `%abc%`: Arrow searches already.
    let inner_wildcard = pattern.trim_start_matches('%').trim_end_matches('%').contains('%');
    (inner_wildcard && !pieces.is_empty()).then_some((pieces, start, end))
}

/// `expr [NOT] LIKE pattern` matched piece by piece.
#[derive(Debug)]
pub struct SegmentsLike {
    /// The `LikeExpr` replaced (shown, and rebuilt with new children).
    original: Arc<dyn PhysicalExpr>,
    input: Arc<dyn PhysicalExpr>,
    negated: bool,
    finders: Vec<Finder<'static>>,
    start: bool,
    end: bool,
}

impl SegmentsLike {
    fn of(like: &LikeExpr, original: Arc<dyn PhysicalExpr>) -> Option<Self> {
        if like.case_insensitive() {
            return None;
        }
        let literal = like.pattern().downcast_ref::<Literal>()?;
        let pattern = match literal.value() {
            ScalarValue::Utf8(Some(p)) | ScalarValue::LargeUtf8(Some(p)) | ScalarValue::Utf8View(Some(p)) => p,
            _ => return None,
        };
        let (pieces, start, end) = segments(pattern)?;
        let finders = pieces.iter().map(|p| Finder::new(p.as_bytes()).into_owned()).collect();
        Some(Self { input: Arc::clone(like.expr()), negated: like.negated(), finders, start, end, original })
    }

    fn matches(&self, text: &str) -> bool {
        let text = text.as_bytes();
        let (mut from, mut to) = (0, text.len());
        let (mut first, mut last) = (0, self.finders.len());
        if self.start {
            let piece = self.finders[0].needle();
            if !text.starts_with(piece) {
                return false;
            }
            from = piece.len();
            first = 1;
        }
        // An inner `%` means two pieces at least when both ends are
        // anchored, so the two anchors never take the same piece.
        if self.end && last > first {
            let piece = self.finders[last - 1].needle();
            if to < from + piece.len() || !text.ends_with(piece) {
                return false;
            }
            to -= piece.len();
            last -= 1;
        }
        for finder in &self.finders[first..last] {
            match finder.find(&text[from..to]) {
                Some(at) => from += at + finder.needle().len(),
                None => return false,
            }
        }
        true
    }

    /// The answer for every row of a text array (NULL rows keep NULL).
    fn over(&self, array: &dyn Array) -> Result<BooleanArray> {
        let len = array.len();
        let bits = match array.data_type() {
            DataType::Utf8 => {
                let a = array.as_string::<i32>();
                BooleanBuffer::collect_bool(len, |i| self.matches(a.value(i)) != self.negated)
            }
            DataType::LargeUtf8 => {
                let a = array.as_string::<i64>();
                BooleanBuffer::collect_bool(len, |i| self.matches(a.value(i)) != self.negated)
            }
            DataType::Utf8View => {
                let a = array.as_string_view();
                BooleanBuffer::collect_bool(len, |i| self.matches(a.value(i)) != self.negated)
            }
            DataType::Dictionary(_, _) => {
                let dictionary = array.as_any_dictionary();
                let values: ArrayRef = Arc::new(self.over(dictionary.values().as_ref())?);
                let taken = take(values.as_ref(), dictionary.keys(), None)?;
                return Ok(taken.as_boolean().clone());
            }
            other => return internal_err!("LIKE on {other}"),
        };
        Ok(BooleanArray::new(bits, array.logical_nulls()))
    }
}

impl PartialEq for SegmentsLike {
    fn eq(&self, other: &Self) -> bool {
        self.original.as_ref() == other.original.as_ref()
    }
}

impl Eq for SegmentsLike {}

impl Hash for SegmentsLike {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.original.hash(state);
    }
}

impl fmt::Display for SegmentsLike {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.original)
    }
}

impl PhysicalExpr for SegmentsLike {
    fn data_type(&self, _input_schema: &Schema) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn nullable(&self, input_schema: &Schema) -> Result<bool> {
        self.original.nullable(input_schema)
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        match self.input.evaluate(batch)? {
            ColumnarValue::Array(a) => Ok(ColumnarValue::Array(Arc::new(self.over(a.as_ref())?))),
            ColumnarValue::Scalar(s) => {
                let answer = self.over(s.to_array()?.as_ref())?;
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&answer, 0)?))
            }
        }
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.original]
    }

    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn PhysicalExpr>>) -> Result<Arc<dyn PhysicalExpr>> {
        let [original]: [Arc<dyn PhysicalExpr>; 1] = children
            .try_into()
            .map_err(|c: Vec<_>| datafusion::common::DataFusionError::Internal(format!("a LIKE given {} children", c.len())))?;
        match original.downcast_ref::<LikeExpr>().and_then(|like| Self::of(like, Arc::clone(&original))) {
            Some(s) => Ok(Arc::new(s)),
            None => Ok(original),
        }
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.original.fmt_sql(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{DictionaryArray, LargeStringArray, StringArray, StringViewArray};
    use datafusion::arrow::datatypes::{Field, Int32Type};
    use datafusion::physical_expr::expressions::{col, lit};

    const TEXTS: [Option<&str>; 14] = [
        Some("special requests"),
        Some("special  requests"),
        Some("requests special"),
        Some("xx special yy requests zz"),
        Some("specialrequests"),
        Some("special"),
        Some(""),
        None,
        Some("special requests special"),
        Some("a special b requests"),
        Some("ab"),
        Some("aXb"),
        Some("abab"),
        Some("spécial requêtes ünï"),
    ];

    const PATTERNS: [&str; 12] = [
        "%special%requests%",
        "special%requests",
        "special%requests%",
        "%special%requests",
        "a%b",
        "%a%b%",
        "a%%b",
        "ab%ab",
        "%spécial%ünï",
        "%x%y%z%",
        "s%",
        "%special%",
    ];

    /// The same answers as DataFusion's LIKE (a regular expression) for
    /// every pattern, with and without NOT, on every kind of text array.
    #[test]
    fn same_answers_as_datafusion() -> Result<()> {
        let plain: ArrayRef = Arc::new(StringArray::from(TEXTS.to_vec()));
        let arrays: Vec<ArrayRef> = vec![
            Arc::clone(&plain),
            Arc::new(LargeStringArray::from(TEXTS.to_vec())),
            Arc::new(StringViewArray::from(TEXTS.to_vec())),
            Arc::new(TEXTS.iter().copied().collect::<DictionaryArray<Int32Type>>()),
        ];
        let mut replaced = 0;
        for array in arrays {
            let schema = Arc::new(Schema::new(vec![Field::new("t", array.data_type().clone(), true)]));
            let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::clone(&array)])?;
            for pattern in PATTERNS {
                for negated in [false, true] {
                    let pattern_value = match array.data_type() {
                        DataType::LargeUtf8 => ScalarValue::LargeUtf8(Some(pattern.to_string())),
                        DataType::Utf8View => ScalarValue::Utf8View(Some(pattern.to_string())),
                        _ => ScalarValue::Utf8(Some(pattern.to_string())),
                    };
                    let like: Arc<dyn PhysicalExpr> = Arc::new(LikeExpr::new(negated, false, col("t", &schema)?, lit(pattern_value)));
                    let want = like.evaluate(&batch)?.into_array(batch.num_rows())?;
                    let Some(ours) = like.downcast_ref::<LikeExpr>().and_then(|l| SegmentsLike::of(l, Arc::clone(&like))) else {
                        continue;
                    };
                    replaced += 1;
                    let got = ours.evaluate(&batch)?.into_array(batch.num_rows())?;
                    assert_eq!(got.as_boolean(), want.as_boolean(), "{} {negated} {pattern}", array.data_type());
                }
            }
        }
        // Patterns Arrow searches for already are left alone.
        assert!(segments("s%").is_none() && segments("%special%").is_none() && segments("%x").is_none());
        assert!(segments("a_b%c").is_none() && segments("a\\%b%c").is_none());
        assert_eq!(replaced, 4 * 2 * 10);
        Ok(())
    }

    /// The rule replaces a filter's LIKE, and the plan answers the same.
    #[tokio::test]
    async fn filters_use_it_and_keep_their_rows() -> Result<()> {
        use datafusion::physical_plan::{collect, displayable};
        use datafusion::prelude::SessionContext;
        let ctx = SessionContext::new();
        let texts: Vec<String> = (0..5000).map(|i| format!("{} special {} requests {}", i % 7, i % 3, i % 11)).collect();
        let mixed: Vec<String> = texts.iter().enumerate().map(|(i, t)| if i % 4 == 0 { t.replace("special", "plain") } else { t.clone() }).collect();
        let array: ArrayRef = Arc::new(StringArray::from(mixed));
        let batch = RecordBatch::try_from_iter(vec![("c", array)])?;
        ctx.register_batch("t", batch)?;
        let sql = "SELECT count(*) FROM t WHERE c NOT LIKE '%special%1 requests%'";
        let expected = ctx.sql(sql).await?.collect().await?;
        let plan = ctx.sql(sql).await?.create_physical_plan().await?;
        let rewritten = LikeSegments.optimize(plan, &ConfigOptions::default())?;
        let mut found = false;
        rewritten.apply(|node| {
            if let Some(f) = node.downcast_ref::<FilterExec>() {
                f.predicate().apply(|e| {
                    found |= e.downcast_ref::<SegmentsLike>().is_some();
                    Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
                })?;
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        })?;
        assert!(found, "{}", displayable(rewritten.as_ref()).indent(true));
        assert!(displayable(rewritten.as_ref()).indent(true).to_string().contains("NOT LIKE %special%1 requests%"));
        let got = collect(rewritten, ctx.task_ctx()).await?;
        assert_eq!(got, expected);
        let n = got[0].column(0).as_primitive::<datafusion::arrow::datatypes::Int64Type>().value(0);
        let want = (0..5000).filter(|i| !(i % 4 != 0 && i % 3 == 1)).count() as i64;
        assert_eq!(n, want);
        Ok(())
    }
}
