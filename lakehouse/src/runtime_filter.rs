//! Runtime join filters applied to rows right after a scan.
//!
//! DataFusion's hash joins build a filter from their build side (the key
//! bounds, and a membership test of the keys) and push it to the scans of
//! the probe side. DataFusion 55 applies such a filter to rows only inside
//! the Parquet decoder, together with every static filter of the query, and
//! evaluating static filters there was measured slower (see `base_config`);
//! memory scans (the loaded copies) and the other formats ignore it. So
//! every scan gets a [`RuntimeFilterExec`] above it that:
//!
//! * passes parent filters to the scan first, which still uses them to prune
//!   row groups, pages or chunks by their statistics;
//! * keeps the dynamic filters the scan does not apply to rows itself, and
//!   evaluates them on each batch, so rows that cannot join are dropped
//!   before they reach the repartitioning and the join;
//! * stops evaluating a filter that turns out to keep nearly every row (its
//!   cost would then be pure loss), and starts again when the filter changes.
//!
//! [`WrapScans`] inserts the wrappers just before DataFusion's post-
//! optimisation filter pushdown, and [`UnwrapIdleScans`] removes the ones
//! that received no filter after it.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::{and, filter_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result, ScalarValue};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{BinaryExpr, CaseExpr, Column, DynamicFilterPhysicalExpr, InListExpr, Literal};
use datafusion::physical_expr::utils::split_conjunction;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr_common::physical_expr::{snapshot_generation, snapshot_physical_expr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterDescription, FilterPushdownPhase, FilterPushdownPropagation, PushedDown,
};
use datafusion::physical_plan::metrics::{Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, Time};
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::{Stream, StreamExt};

use crate::key_bitmap::{BuildKeys, KeyBitmap, ScanKeyTests};

/// A filter is given up when, after this many rows, it kept more than
/// [`GIVE_UP_KEEP_RATIO`] of them.
const GIVE_UP_AFTER_ROWS: u64 = 32 * 1024;
const GIVE_UP_KEEP_RATIO: f64 = 0.9;

/// A merged list of a partitioned join's keys this long or shorter is
/// evaluated at every scan it reaches, not only under aggregations.
const SHORT_KEY_LIST: usize = 1024;

/// Applies the runtime (dynamic) filters pushed to a scan to its rows.
#[derive(Debug, Clone)]
pub struct RuntimeFilterExec {
    input: Arc<dyn ExecutionPlan>,
    filters: Vec<Arc<dyn PhysicalExpr>>,
    /// Whether a partitioned join's filter (routed to its partitions by the
    /// rows' hashes) is evaluated too, not only single-table ones.
    routed: bool,
    /// The filters among `filters` whose join collects its build side into
    /// one table: no row is passed on before they are complete (see
    /// [`AwaitCollectedBuilds`]).
    awaited: Vec<Arc<dyn PhysicalExpr>>,
    /// The build keys of the joins whose filters are among `filters`, by
    /// the filters' identity (see [`crate::key_bitmap`]).
    build_keys: Vec<(u64, Arc<BuildKeys>)>,
    /// Where the bitmaps of those keys go down to the scan below when it
    /// can test them itself (a loaded table's scan: see
    /// [`crate::key_bitmap::ScanKeyTests`]).
    scan_tests: Option<Arc<ScanKeyTests>>,
    metrics: ExecutionPlanMetricsSet,
}

impl RuntimeFilterExec {
    pub fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        Self {
            input,
            filters: Vec::new(),
            routed: false,
            awaited: Vec::new(),
            build_keys: Vec::new(),
            scan_tests: None,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// Over `input`, a scan that tests the key bitmaps handed to `tests`
    /// (this node's input rebuilt to read them).
    pub fn with_scan_tests(mut self, input: Arc<dyn ExecutionPlan>, tests: Arc<ScanKeyTests>) -> Self {
        self.input = input;
        self.scan_tests = Some(tests);
        self
    }

    /// Tests the rows against the build keys of these joins' filters once
    /// they are gathered, in place of the filters.
    pub fn with_build_keys(mut self, build_keys: Vec<(u64, Arc<BuildKeys>)>) -> Self {
        self.build_keys = build_keys;
        self
    }

    /// Evaluates partitioned joins' filters too (see [`WrapScans`]).
    pub fn with_routed(mut self, routed: bool) -> Self {
        self.routed = routed;
        self
    }

    pub fn filters(&self) -> &[Arc<dyn PhysicalExpr>] {
        &self.filters
    }

    pub fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }
}

impl DisplayAs for RuntimeFilterExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "RuntimeFilterExec: ")?;
        if self.routed {
            write!(f, "(partitioned filters too) ")?;
        }
        if !self.awaited.is_empty() {
            write!(f, "(after {} build{}) ", self.awaited.len(), if self.awaited.len() == 1 { "" } else { "s" })?;
        }
        if self.scan_tests.is_some() {
            write!(f, "(key bitmaps tested in the scan) ")?;
        }
        for (i, filter) in self.filters.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{filter}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for RuntimeFilterExec {
    fn name(&self) -> &str {
        "RuntimeFilterExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        // Rows are only dropped: partitioning, ordering and equivalences
        // are the scan's.
        self.input.properties()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        // A hash join computes its filter only when a node below it shows
        // the filter here.
        for filter in &self.filters {
            if f(filter)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = crate::only_child(self.name(), children)?;
        // The scan's tests name its own output columns: they stay with it
        // alone, not with another input (a projection's columns differ).
        let scan_tests = self.scan_tests.clone().filter(|_| Arc::ptr_eq(&input, &self.input));
        Ok(Arc::new(Self { input, scan_tests, ..Self::clone(&self) }))
    }

    #[allow(deprecated)]
    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(children, ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute))
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let metric = || MetricBuilder::new(&self.metrics);
        if let Some(tests) = &self.scan_tests {
            tests.start(partition, metric().counter("rows_dropped_in_scan", partition));
        }
        let input = self.input.execute(partition, context)?;
        let awaited = self.awaited.clone();
        let builds = (!awaited.is_empty()).then(|| {
            let wait = async move {
                for filter in &awaited {
                    if let Some(dynamic) = filter.downcast_ref::<DynamicFilterPhysicalExpr>() {
                        dynamic.wait_complete().await;
                    }
                }
            };
            Box::pin(wait) as futures::future::BoxFuture<'static, ()>
        });
        let stream = RuntimeFilterStream {
            schema: input.schema(),
            builds,
            input,
            filters: self
                .filters
                .iter()
                .map(|f| {
                    let id = crate::key_bitmap::join_filter_id(f);
                    let keys = self.build_keys.iter().find(|(k, _)| Some(*k) == id).map(|(_, keys)| Arc::clone(keys));
                    FilterState::new(Arc::clone(f), self.routed, keys)
                })
                .collect(),
            scan_tests: self.scan_tests.clone().map(|t| (t, partition)),
            key_bitmaps: metric().counter("key_bitmaps", partition),
            rows_in: metric().counter("rows_in", partition),
            rows_dropped: metric().counter("rows_dropped", partition),
            filters_given_up: metric().counter("filters_given_up", partition),
            time: metric().subset_time("filter_time", partition),
        };
        Ok(Box::pin(stream))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<datafusion::physical_plan::statistics::ChildStats> {
        // Partitions are the input's, one for one.
        vec![datafusion::physical_plan::statistics::ChildStats::At(partition)]
    }

    /// The input's, as an upper bound: rows are only dropped, and how many
    /// is known only once the joins have built.
    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<datafusion::common::Statistics>],
        _args: &datafusion::physical_plan::StatisticsArgs,
    ) -> Result<Arc<datafusion::common::Statistics>> {
        let input = match input_stats.first() {
            Some(s) => s.as_ref().clone(),
            None => datafusion::common::Statistics::new_unknown(&self.schema()),
        };
        Ok(Arc::new(input.to_inexact()))
    }

    fn gather_filters_for_pushdown(
        &self,
        _phase: FilterPushdownPhase,
        parent_filters: Vec<Arc<dyn PhysicalExpr>>,
        _config: &ConfigOptions,
    ) -> Result<FilterDescription> {
        FilterDescription::from_children(parent_filters, &self.children())
    }

    fn handle_child_pushdown_result(
        &self,
        phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        // Only the post-optimisation phase carries dynamic filters; static
        // filters stay where the planner put them.
        if phase != FilterPushdownPhase::Post {
            return Ok(FilterPushdownPropagation::if_all(child_pushdown_result));
        }
        let mut taken = Vec::new();
        let mut answers = Vec::with_capacity(child_pushdown_result.parent_filters.len());
        for result in child_pushdown_result.parent_filters {
            if matches!(result.all(), PushedDown::No) {
                taken.push(result.filter);
            }
            answers.push(PushedDown::Yes);
        }
        let propagation = FilterPushdownPropagation::with_parent_pushdown_result(answers);
        if taken.is_empty() {
            return Ok(propagation);
        }
        let mut node = self.clone();
        node.filters.extend(taken);
        Ok(propagation.with_updated_node(Arc::new(node)))
    }
}

/// How a filter is evaluated.
enum Test {
    /// The filter as it stands.
    Expr(Arc<dyn PhysicalExpr>),
    /// The join's build keys: whether the probe key is one of them.
    Keys { probe: Arc<dyn PhysicalExpr>, bitmap: Arc<KeyBitmap> },
}

impl Test {
    fn keep(&self, batch: &RecordBatch) -> Result<BooleanArray> {
        let rows = batch.num_rows();
        match self {
            Test::Expr(expr) => {
                let value = expr.evaluate(batch)?.into_array(rows)?;
                value.as_boolean_opt().cloned().ok_or_else(|| {
                    datafusion::common::DataFusionError::Internal(format!(
                        "runtime filter {expr} gave {} instead of booleans",
                        value.data_type()
                    ))
                })
            }
            Test::Keys { probe, bitmap } => {
                let keys = probe.evaluate(batch)?.into_array(rows)?;
                bitmap.contains(keys.as_ref()).ok_or_else(|| {
                    datafusion::common::DataFusionError::Internal(format!(
                        "join key {probe} is {}, not an integer",
                        keys.data_type()
                    ))
                })
            }
        }
    }
}

/// One filter as a stream sees it.
struct FilterState {
    expr: Arc<dyn PhysicalExpr>,
    /// Whether a filter routed by partition is evaluated.
    routed_ok: bool,
    /// The build keys of the filter's join, when they are gathered.
    build_keys: Option<Arc<BuildKeys>>,
    /// Whether the filter moves to its build keys' bitmap if it proves
    /// selective over its first rows.
    bitmap_pending: bool,
    /// The generation the snapshot was taken at; None before the first.
    generation: Option<u64>,
    /// The filter as it stands, or None while it keeps every row.
    current: Option<Test>,
    seen: u64,
    kept: u64,
    given_up: bool,
}

impl FilterState {
    fn new(expr: Arc<dyn PhysicalExpr>, routed_ok: bool, build_keys: Option<Arc<BuildKeys>>) -> Self {
        Self {
            expr,
            routed_ok,
            build_keys,
            bitmap_pending: false,
            generation: None,
            current: None,
            seen: 0,
            kept: 0,
            given_up: false,
        }
    }

    /// Takes a new snapshot when the filter changed since the last one.
    fn refresh(&mut self, schema: &SchemaRef) -> Result<()> {
        let generation = snapshot_generation(&self.expr);
        if self.generation == Some(generation) {
            return Ok(());
        }
        self.generation = Some(generation);
        self.seen = 0;
        self.kept = 0;
        self.given_up = false;
        let snapshot = snapshot_physical_expr(Arc::clone(&self.expr))?;
        let always_true = snapshot
            .downcast_ref::<Literal>()
            .is_some_and(|l| matches!(l.value(), ScalarValue::Boolean(Some(true))));
        // Once the join has published its filter, its build keys are all
        // gathered (each partition's build side is read before the join
        // reports it), and a bitmap of them says the same as the filter,
        // more cheaply. Making it costs a pass over the keys, so the filter
        // is first tried as it is, partitioned or not, on the first rows:
        // one that keeps nearly all of them is given up without a bitmap
        // (TPC-H Q9's filter of `lineitem` by its 1.5M orders).
        self.bitmap_pending = !always_true && self.build_keys.as_ref().is_some_and(|keys| keys.fit());
        // A partitioned join's filter routes every row to its partition's
        // hash table through a CASE on the row's hash; evaluated row by row
        // that cost 22-28 ns a row against 6-7 ns for a single table, and
        // was measured to lose on every TPC-H query that had one (Q4, Q5,
        // Q10, Q20, Q22): it is left to the join, unless an aggregation lies
        // between the scan and the join (see `WrapScans`).
        // When every partition's filter is a list of keys, the lists merge
        // into one that needs no routing (see `merge_routed`). It is used
        // where partitioned filters are (over aggregations), and elsewhere
        // when the list is short enough for cheap lookups: a long one was
        // measured to cost as much as it saves on TPC-H Q3 (70 -> 110 ms).
        let snapshot = match snapshot.downcast_ref::<CaseExpr>().and_then(|case| merge_routed(case, schema)) {
            Some((merged, keys)) if self.routed_ok || keys <= SHORT_KEY_LIST => merged,
            _ => snapshot,
        };
        let routed = snapshot.downcast_ref::<CaseExpr>().is_some() && !self.routed_ok && !self.bitmap_pending;
        self.current = if always_true || routed { None } else { Some(Test::Expr(snapshot)) };
        Ok(())
    }

    /// Counts the rows a test saw and kept, and moves on from it: gives
    /// the filter up, or tests with the bitmap of the join's keys.
    fn account(&mut self, seen: u64, kept: u64) -> Outcome {
        self.seen += seen;
        self.kept += kept;
        if self.seen < GIVE_UP_AFTER_ROWS {
            return Outcome::Kept;
        }
        if self.kept as f64 > self.seen as f64 * GIVE_UP_KEEP_RATIO {
            self.given_up = true;
            return Outcome::GivenUp;
        }
        if !std::mem::take(&mut self.bitmap_pending) {
            return Outcome::Kept;
        }
        let bitmap = self.build_keys.as_ref().and_then(|keys| keys.bitmap());
        match (bitmap, self.expr.children().as_slice()) {
            (Some(bitmap), [probe]) => {
                self.current = Some(Test::Keys { probe: Arc::clone(probe), bitmap });
                Outcome::Bitmap
            }
            _ => Outcome::Kept,
        }
    }
}

/// What [`FilterState::account`] did with a filter.
enum Outcome {
    Kept,
    GivenUp,
    Bitmap,
}

/// A partitioned join's filter `CASE hash(key) % n WHEN i THEN key >= lo_i
/// AND key <= hi_i AND key IN (keys_i) ... ELSE false END` as the one list
/// `key IN (keys_0 ∪ ... ∪ keys_n-1)`. The two keep the same rows: the join
/// partitions its build side by the same hash of the same key, so the keys
/// of partition i are exactly those that hash to i, and a key is in the union
/// exactly when it is in its own partition's list. None when a partition's
/// filter is not of that shape (a large partition's is a hash table lookup).
fn merge_routed(case: &CaseExpr, schema: &SchemaRef) -> Option<(Arc<dyn PhysicalExpr>, usize)> {
    case.expr()?;
    if let Some(other) = case.else_expr() {
        let is_false = other.downcast_ref::<Literal>().is_some_and(|l| matches!(l.value(), ScalarValue::Boolean(Some(false))));
        if !is_false {
            return None;
        }
    }
    let mut key: Option<Arc<dyn PhysicalExpr>> = None;
    let mut values: Vec<ScalarValue> = Vec::new();
    for (_, then) in case.when_then_expr() {
        if then.downcast_ref::<Literal>().is_some_and(|l| matches!(l.value(), ScalarValue::Boolean(Some(false)))) {
            continue;
        }
        let mut list = None;
        for part in split_conjunction(then) {
            if let Some(in_list) = part.downcast_ref::<InListExpr>() {
                if in_list.negated() || list.is_some() {
                    return None;
                }
                list = Some(in_list);
            } else if !is_bound_of(part) {
                return None;
            }
        }
        let list = list?;
        match &key {
            Some(k) if k.as_ref() != list.expr().as_ref() => return None,
            Some(_) => {}
            None => key = Some(Arc::clone(list.expr())),
        }
        for item in list.list() {
            values.push(item.downcast_ref::<Literal>()?.value().clone());
        }
    }
    let key = key?;
    let keys = values.len();
    let array = ScalarValue::iter_to_array(values).ok()?;
    InListExpr::try_new_from_array(key, array, false, schema).ok().map(|e| (Arc::new(e) as Arc<dyn PhysicalExpr>, keys))
}

/// `key >= literal` or `key <= literal`: the bounds a join puts beside its
/// list of keys, implied by the list.
fn is_bound_of(expr: &Arc<dyn PhysicalExpr>) -> bool {
    expr.downcast_ref::<BinaryExpr>().is_some_and(|b| {
        matches!(b.op(), Operator::GtEq | Operator::LtEq) && b.right().downcast_ref::<Literal>().is_some()
    })
}

struct RuntimeFilterStream {
    schema: SchemaRef,
    /// Completes when the awaited joins' builds are done; the input is not
    /// read before.
    builds: Option<futures::future::BoxFuture<'static, ()>>,
    input: SendableRecordBatchStream,
    filters: Vec<FilterState>,
    /// The scan below and this stream's partition, when the scan tests key
    /// bitmaps itself.
    scan_tests: Option<(Arc<ScanKeyTests>, usize)>,
    rows_in: Count,
    rows_dropped: Count,
    filters_given_up: Count,
    key_bitmaps: Count,
    time: Time,
}

impl RuntimeFilterStream {
    fn apply(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        let _timer = self.time.timer();
        let rows = batch.num_rows();
        self.rows_in.add(rows);
        let mut mask: Option<BooleanArray> = None;
        for state in &mut self.filters {
            state.refresh(&self.schema)?;
            let Some(test) = state.current.as_ref() else { continue };
            if state.given_up {
                continue;
            }
            let keep = test.keep(&batch)?;
            match state.account(rows as u64, keep.true_count() as u64) {
                Outcome::Kept => {}
                Outcome::GivenUp => self.filters_given_up.add(1),
                Outcome::Bitmap => {
                    self.key_bitmaps.add(1);
                    if let (Some((tests, partition)), Some(Test::Keys { probe, bitmap })) = (&self.scan_tests, &state.current) {
                        if let Some(column) = probe.downcast_ref::<Column>() {
                            tests.add(*partition, column.index(), Arc::clone(bitmap));
                        }
                    }
                }
            }
            mask = Some(match mask {
                Some(m) => and(&m, &keep)?,
                None => keep,
            });
        }
        let Some(mask) = mask else { return Ok(batch) };
        let kept = mask.true_count();
        if kept == rows {
            return Ok(batch);
        }
        self.rows_dropped.add(rows - kept);
        Ok(filter_record_batch(&batch, &mask)?)
    }
}

impl Stream for RuntimeFilterStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(builds) = self.builds.as_mut() {
            if builds.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.builds = None;
        }
        loop {
            match self.input.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(batch))) => {
                    let filtered = self.apply(batch);
                    match filtered {
                        // Empty batches are not passed on.
                        Ok(b) if b.num_rows() == 0 => continue,
                        other => return Poll::Ready(Some(other)),
                    }
                }
                other => return other,
            }
        }
    }
}

impl RecordBatchStream for RuntimeFilterStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// Puts a [`RuntimeFilterExec`] above every data source scan, and above the
/// filters and projections directly over it, so the static filters (cheap
/// comparisons, mostly) thin the rows first. Must run just before
/// DataFusion's post-optimisation `FilterPushdown`.
///
/// A scan whose rows are aggregated before they reach the nearest join
/// above it evaluates partitioned joins' filters too: a filter on the
/// grouping keys passes through the aggregation, and every row it drops is
/// a row not aggregated (TPC-H Q17 aggregates all of lineitem by part for
/// the 200 parts it joins with, Q18 by order).
#[derive(Debug, Default)]
pub struct WrapScans;

impl PhysicalOptimizerRule for WrapScans {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        if !config.optimizer.enable_dynamic_filter_pushdown {
            return Ok(plan);
        }
        wrap_scans(plan, false)
    }

    fn name(&self) -> &str {
        "lakewave_wrap_scans_for_runtime_filters"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `node` with its scans wrapped; `aggregated` says whether an aggregation
/// lies between `node` and the nearest join above it.
fn wrap_scans(node: Arc<dyn ExecutionPlan>, aggregated: bool) -> Result<Arc<dyn ExecutionPlan>> {
    if is_scan_chain(&node) {
        return Ok(Arc::new(RuntimeFilterExec::new(node).with_routed(aggregated)));
    }
    let below = if node.downcast_ref::<AggregateExec>().is_some() {
        true
    } else if node.downcast_ref::<HashJoinExec>().is_some() {
        false
    } else {
        aggregated
    };
    let children =
        node.children().into_iter().map(|c| wrap_scans(Arc::clone(c), below)).collect::<Result<Vec<_>>>()?;
    if children.is_empty() {
        return Ok(node);
    }
    datafusion::physical_plan::execution_plan::replace_children_if_necessary(node, children)
}

/// A scan, or filters and projections over exactly one scan.
fn is_scan_chain(node: &Arc<dyn ExecutionPlan>) -> bool {
    if node.downcast_ref::<DataSourceExec>().is_some() {
        return true;
    }
    let passes = node.downcast_ref::<FilterExec>().is_some() || node.downcast_ref::<ProjectionExec>().is_some();
    passes && node.children().len() == 1 && is_scan_chain(node.children()[0])
}

/// Removes the [`RuntimeFilterExec`]s that received no filter.
#[derive(Debug, Default)]
pub struct UnwrapIdleScans;

impl PhysicalOptimizerRule for UnwrapIdleScans {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| match node.downcast_ref::<RuntimeFilterExec>() {
            Some(wrapper) if wrapper.filters.is_empty() => Ok(Transformed::yes(Arc::clone(&wrapper.input))),
            _ => Ok(Transformed::no(node)),
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "lakewave_unwrap_idle_scans"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Makes scans wait for the runtime filters of the joins that collect their
/// build side into one table. Such a build is usually small and quick, but
/// the scans under it start as soon as the query does: DataFusion starts
/// the inputs of a partition merge (the one above every collected build
/// side) when the plan is executed. So in TPC-H Q7 the 10,000 suppliers
/// were read and joined with 1.8M `lineitem` rows before the join with the
/// two nations above had published its filter, and all of them went on to
/// the join with `orders` instead of the 8% from France or Germany.
///
/// Waiting cannot stall the query: such a filter is complete as soon as its
/// join's build is, the build side never contains the scans the filter
/// reaches (they are on the probe side), and the join builds when it is
/// first polled. A partitioned join's filter completes only when every
/// partition's build is done, and a sort's or an aggregation's filter only
/// when its input is read: those are not waited for.
///
/// Must run after the joins' modes are settled (it is placed just before
/// DataFusion's sanity check). `LAKEWAVE_AWAIT_BUILDS=off` in the server's
/// environment turns it off, for comparisons.
#[derive(Debug, Default)]
pub struct AwaitCollectedBuilds;

impl PhysicalOptimizerRule for AwaitCollectedBuilds {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        if crate::switched_off("LAKEWAVE_AWAIT_BUILDS") {
            return Ok(plan);
        }
        let mut collected = std::collections::HashSet::new();
        plan.apply(|node| {
            if let Some(join) = node.downcast_ref::<HashJoinExec>()
                && join.partition_mode() == &PartitionMode::CollectLeft
            {
                collected.extend(join.dynamic_expressions_produced().iter().filter_map(|f| f.expression_id()));
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        if collected.is_empty() {
            return Ok(plan);
        }
        plan.transform_up(|node| {
            let Some(wrapper) = node.downcast_ref::<RuntimeFilterExec>() else {
                return Ok(Transformed::no(node));
            };
            let mut awaited = Vec::new();
            for filter in &wrapper.filters {
                filter.apply(|e| {
                    if e.downcast_ref::<DynamicFilterPhysicalExpr>().is_some()
                        && e.expression_id().is_some_and(|id| collected.contains(&id))
                    {
                        awaited.push(Arc::clone(e));
                    }
                    Ok(TreeNodeRecursion::Continue)
                })?;
            }
            if awaited.is_empty() {
                return Ok(Transformed::no(node));
            }
            Ok(Transformed::yes(Arc::new(RuntimeFilterExec { awaited, ..wrapper.clone() }) as Arc<dyn ExecutionPlan>))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "lakewave_await_collected_builds"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// DataFusion's physical optimiser rules with the runtime-filter wrapping
/// around the post-optimisation filter pushdown.
/// `LAKEWAVE_RUNTIME_FILTERS=off` in the server's environment leaves the
/// runtime filters where DataFusion puts them (to measure what they bring).
pub fn physical_optimizer_rules() -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
    let mut rules = datafusion::physical_optimizer::optimizer::PhysicalOptimizer::new().rules;
    crate::selectivity::insert_rule(&mut rules);
    crate::not_in::insert_rule(&mut rules);
    crate::join_mode::insert_rule(&mut rules);
    crate::eager_agg::insert_rule(&mut rules);
    crate::dict_group::insert_rule(&mut rules);
    crate::conjunction::insert_rule(&mut rules);
    // The post-optimisation pushdown is the last FilterPushdown in the list.
    let post = rules.iter().rposition(|r| r.name() == "FilterPushdown(Post)");
    // Repeated subplans are shared before runtime filters are pushed into
    // them (a copy's join must not filter the rows the others read).
    let share = !crate::switched_off("LAKEWAVE_SHARE_SUBPLANS");
    if share {
        let at = post.unwrap_or(rules.len());
        rules.insert(at, Arc::new(crate::shared_subplan::ShareSubplans));
    }
    let post = post.map(|i| i + usize::from(share));
    if crate::switched_off("LAKEWAVE_RUNTIME_FILTERS") {
        return rules;
    }
    match post {
        Some(i) => {
            rules.insert(i + 1, Arc::new(UnwrapIdleScans));
            rules.insert(i, Arc::new(WrapScans));
            crate::insert_before_sanity_check(&mut rules, Arc::new(AwaitCollectedBuilds));
            crate::insert_before_sanity_check(&mut rules, Arc::new(crate::key_bitmap::CollectBuildKeys));
        }
        None => tracing::warn!("DataFusion's post-optimisation filter pushdown was not found; runtime filters stay in the decoders"),
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::physical_expr::expressions::{col, lit};

    /// A routed filter of the shape a partitioned join builds (partition =
    /// k % 2, each partition's keys listed with their bounds) and its merged
    /// form keep the same rows; a partition's hash lookup is not merged.
    #[test]
    fn routed_key_lists_merge_into_one() -> Result<()> {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let k = col("k", &schema)?;
        let branch = |keys: Vec<i64>| -> Result<Arc<dyn PhysicalExpr>> {
            let lo = *keys.iter().min().expect("keys");
            let hi = *keys.iter().max().expect("keys");
            let list = Arc::new(InListExpr::try_new_from_array(Arc::clone(&k), Arc::new(Int64Array::from(keys)), false, &schema)?);
            let ge = Arc::new(BinaryExpr::new(Arc::clone(&k), Operator::GtEq, lit(lo)));
            let le = Arc::new(BinaryExpr::new(Arc::clone(&k), Operator::LtEq, lit(hi)));
            let bounds = Arc::new(BinaryExpr::new(ge, Operator::And, le));
            Ok(Arc::new(BinaryExpr::new(bounds, Operator::And, list)))
        };
        let route = Arc::new(BinaryExpr::new(Arc::clone(&k), Operator::Modulo, lit(2i64)));
        let case = CaseExpr::try_new(
            Some(route.clone()),
            vec![(lit(0i64), branch(vec![4, 10, 32])?), (lit(1i64), branch(vec![3, 7, 51])?)],
            Some(lit(false)),
        )?;
        let (merged, keys) = merge_routed(&case, &schema).expect("merged");
        assert_eq!(keys, 6);
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from_iter_values(0..64))])?;
        let routed = case.evaluate(&batch)?.into_array(64)?;
        let flat = merged.evaluate(&batch)?.into_array(64)?;
        assert_eq!(routed.as_boolean(), flat.as_boolean());
        assert_eq!(flat.as_boolean().true_count(), 6);

        // A branch that is not a list of keys keeps the filter routed.
        let other = CaseExpr::try_new(
            Some(route),
            vec![(lit(0i64), branch(vec![4])?), (lit(1i64), Arc::new(BinaryExpr::new(k, Operator::Gt, lit(5i64))))],
            Some(lit(false)),
        )?;
        assert!(merge_routed(&other, &schema).is_none());
        Ok(())
    }
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::execution::session_state::SessionStateBuilder;
    use datafusion::physical_plan::collect;
    use datafusion::prelude::{SessionConfig, SessionContext};

    fn table(keys: Vec<i64>) -> Result<Arc<MemTable>> {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false), Field::new("v", DataType::Int64, false)]));
        let values: Vec<i64> = keys.iter().map(|k| k * 2).collect();
        let batches: Vec<RecordBatch> = keys
            .chunks(8192)
            .zip(values.chunks(8192))
            .map(|(k, v)| {
                RecordBatch::try_new(
                    schema.clone(),
                    vec![Arc::new(Int64Array::from(k.to_vec())), Arc::new(Int64Array::from(v.to_vec()))],
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(Arc::new(MemTable::try_new(schema, vec![batches])?))
    }

    fn context_with(partitions: usize) -> Result<SessionContext> {
        let state = SessionStateBuilder::new()
            .with_config(SessionConfig::new().with_target_partitions(partitions))
            .with_default_features()
            .with_physical_optimizer_rules(physical_optimizer_rules())
            .build();
        let ctx = SessionContext::new_with_state(state);
        ctx.register_table("small", table(vec![5, 50_000, 99_999])?)?;
        ctx.register_table("big", table((1..=100_000).collect())?)?;
        Ok(ctx)
    }

    fn context() -> Result<SessionContext> {
        context_with(2)
    }

    fn wrappers(plan: &Arc<dyn ExecutionPlan>) -> Vec<RuntimeFilterExec> {
        let mut found = Vec::new();
        let _ = plan.apply(|node| {
            if let Some(w) = node.downcast_ref::<RuntimeFilterExec>() {
                found.push(w.clone());
            }
            Ok(TreeNodeRecursion::Continue)
        });
        found
    }

    /// Runs a query; gives its first row's integer columns and the wrappers
    /// of its plan, with their metrics filled in.
    async fn run(ctx: &SessionContext, sql: &str) -> Result<(Vec<i64>, Vec<RuntimeFilterExec>)> {
        let plan = ctx.sql(sql).await?.create_physical_plan().await?;
        let batches = collect(plan.clone(), ctx.task_ctx()).await?;
        let row = batches[0]
            .columns()
            .iter()
            .map(|c| c.as_primitive::<datafusion::arrow::datatypes::Int64Type>().value(0))
            .collect();
        Ok((row, wrappers(&plan)))
    }

    fn metric(wrapper: &RuntimeFilterExec, name: &str) -> Option<usize> {
        wrapper.metrics().expect("metrics").sum_by_name(name).map(|m| m.as_usize())
    }

    #[tokio::test]
    async fn a_join_filter_drops_probe_rows_at_the_scan() -> Result<()> {
        let ctx = context()?;
        let (row, found) = run(&ctx, "SELECT count(*), sum(big.v) FROM small JOIN big ON small.k = big.k").await?;
        assert_eq!(row, vec![3, 2 * (5 + 50_000 + 99_999)]);
        assert_eq!(found.len(), 1, "one scan takes the join's filter");
        // The wrapper reports its input's row count, as an upper bound.
        let estimate = datafusion::physical_plan::StatisticsContext::new()
            .compute(&found[0], &datafusion::physical_plan::StatisticsArgs::new())?;
        assert_eq!(estimate.num_rows, datafusion::common::stats::Precision::Inexact(100_000));
        assert_eq!(metric(&found[0], "rows_in"), Some(100_000));
        assert_eq!(metric(&found[0], "rows_dropped"), Some(100_000 - 3));
        Ok(())
    }

    /// Build keys too many for a list and too sparse for DataFusion's
    /// direct-indexed table: the rows are tested with a bitmap of the keys,
    /// whichever way the join is run.
    #[tokio::test]
    async fn sparse_build_keys_are_tested_with_a_bitmap() -> Result<()> {
        // A collected join: 2,000 keys spread over 100,000 values. A
        // partitioned one: half of `big`'s keys, too many to collect.
        for (partitioned, step) in [(false, 50i64), (true, 2)] {
            let ctx = context()?;
            if partitioned {
                ctx.sql("SET datafusion.optimizer.hash_join_single_partition_threshold = 0").await?.collect().await?;
                ctx.sql("SET datafusion.optimizer.hash_join_single_partition_threshold_rows = 0").await?.collect().await?;
            }
            let keys = 100_000 / step;
            ctx.register_table("spread", table((1..=keys).map(|k| k * step).collect())?)?;
            let sql = "SELECT count(*), sum(big.v) FROM spread JOIN big ON spread.k = big.k";
            let plan = ctx.sql(sql).await?.create_physical_plan().await?;
            let text = datafusion::physical_plan::displayable(plan.as_ref()).indent(true).to_string();
            assert_eq!(text.contains("mode=Partitioned"), partitioned, "{text}");
            assert!(text.contains("BuildKeysExec: key=k@0"), "{text}");
            let (row, found) = run(&ctx, sql).await?;
            // big.v = 2 * k: twice the sum of the keys.
            assert_eq!(row, vec![keys, 2 * step * keys * (keys + 1) / 2], "{text}");
            assert_eq!(found.len(), 1, "{text}");
            assert!(metric(&found[0], "key_bitmaps").unwrap_or(0) >= 1, "{text}");
            // A partitioned join's filter is not waited for: rows read
            // before it is built pass.
            if !partitioned {
                assert_eq!(metric(&found[0], "rows_dropped"), Some(100_000 - keys as usize));
            }
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_filter_that_keeps_everything_is_given_up() -> Result<()> {
        // One partition: the join builds one table, whose filter is evaluated.
        let ctx = context_with(1)?;
        ctx.register_table("all_keys", table((1..=100_000).collect())?)?;
        let (row, found) = run(&ctx, "SELECT count(*) FROM all_keys JOIN big ON all_keys.k = big.k").await?;
        assert_eq!(row, vec![100_000]);
        assert_eq!(found.len(), 1);
        assert_eq!(metric(&found[0], "rows_dropped"), Some(0));
        assert!(metric(&found[0], "filters_given_up").unwrap_or(0) >= 1);
        Ok(())
    }

    #[tokio::test]
    async fn the_filter_runs_after_the_static_filters_of_the_scan() -> Result<()> {
        let ctx = context()?;
        let (row, found) =
            run(&ctx, "SELECT count(*) FROM small JOIN big ON small.k = big.k WHERE big.v > 100").await?;
        // Key 5 has v = 10: the static filter removes it.
        assert_eq!(row, vec![2]);
        assert_eq!(found.len(), 1);
        assert!(found[0].input().downcast_ref::<FilterExec>().is_some(), "{}", found[0].input().name());
        // The 50 rows with v <= 100 never reach the runtime filter.
        assert_eq!(metric(&found[0], "rows_in"), Some(100_000 - 50));
        assert_eq!(metric(&found[0], "rows_dropped"), Some(100_000 - 50 - 2));
        Ok(())
    }

    /// TPC-H Q7's shape: the filter of the join with `small` (at the top)
    /// reaches `mid`, the build side of the join with `big` below it.
    #[tokio::test]
    async fn a_scan_under_a_collected_build_waits_for_the_filter_from_above() -> Result<()> {
        let ctx = context()?;
        ctx.register_table("mid", table((1..=20_000).collect())?)?;
        let sql = "SELECT count(*), sum(big.v) FROM big JOIN mid ON big.k = mid.k JOIN small ON small.k = mid.k";
        let plan = ctx.sql(sql).await?.create_physical_plan().await?;
        let text = datafusion::physical_plan::displayable(plan.as_ref()).indent(true).to_string();
        // Both joins collect their build side: `mid` waits for `small`'s
        // build, `big` for `mid`'s.
        assert_eq!(text.matches("RuntimeFilterExec: (after 1 build)").count(), 2, "{text}");
        for _ in 0..5 {
            let (row, found) = run(&ctx, sql).await?;
            assert_eq!(row, vec![1, 10]);
            let mut seen: Vec<(Option<usize>, Option<usize>)> =
                found.iter().map(|w| (metric(w, "rows_in"), metric(w, "rows_dropped"))).collect();
            seen.sort();
            // Every row of `mid` but key 5 is dropped at its scan, so the
            // build below keeps one row, and so does `big`'s filter.
            assert_eq!(seen, vec![(Some(20_000), Some(20_000 - 1)), (Some(100_000), Some(100_000 - 1))], "{text}");
        }
        // An empty build at the top: the query ends without reading below.
        let empty = format!("{sql} WHERE small.k < 0");
        let batches = tokio::time::timeout(std::time::Duration::from_secs(60), ctx.sql(&empty).await?.collect())
            .await
            .expect("the query ends")?;
        assert_eq!(batches[0].column(0).as_primitive::<datafusion::arrow::datatypes::Int64Type>().value(0), 0);
        Ok(())
    }

    #[tokio::test]
    async fn scans_without_a_runtime_filter_are_not_wrapped() -> Result<()> {
        let ctx = context()?;
        let plan = ctx.sql("SELECT sum(v) FROM big WHERE k > 10").await?.create_physical_plan().await?;
        assert!(wrappers(&plan).is_empty());
        Ok(())
    }
}
